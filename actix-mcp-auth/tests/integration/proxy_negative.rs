//! Proxy mode: hostile and broken requests at every endpoint, and AuthKit failing at each step.

use std::time::Duration;

use actix_mcp_auth_testing::{Endpoint, Failure, FakeAuthKit};
use serde_json::json;

use crate::{
    app::Reply,
    proxy_app::{
        Browser, McpClient, ProxyApp, authorize_url, call_mcp, hidden_field, location_params,
        login, pkce, redeem, register, register_with, token_request,
    },
    proxy_flow::token_request_to,
    store_support::TestDb,
};

crate::store_support::http_tests!(
    registration_refuses_dangerous_metadata,
    authorize_never_redirects_before_client_and_redirect_uri_are_valid,
    authorize_errors_go_back_with_state_and_iss,
    consent_is_bound_to_the_browser_and_single_use,
    denial_reaches_the_client,
    callback_checks_browser_issuer_and_replay,
    token_endpoint_refuses_bad_codes,
    code_replay_revokes_what_the_code_issued,
    refresh_tokens_rotate_and_replays_end_the_grant,
    confidential_clients_authenticate_with_their_registered_method,
    revocation_follows_rfc7009,
    upstream_failures_are_reported_not_leaked,
    upstream_session_state_reaches_our_tokens,
    a_lost_encryption_key_forces_a_new_login_not_an_outage,
    endpoints_are_rate_limited_per_client,
    remembered_consent_is_reused_only_where_it_was_given,
);

async fn post_json(app: &ProxyApp, path: &str, body: serde_json::Value) -> Reply {
    let res = awc::Client::default()
        .post(app.url(path))
        .send_json(&body)
        .await
        .unwrap();
    Reply::read(res).await
}

async fn setup(db: &TestDb) -> (FakeAuthKit, ProxyApp, Browser) {
    let fake = FakeAuthKit::start();
    let app = ProxyApp::spawn(&fake, db.store().await, |b| b).await;
    (fake, app, Browser::default())
}

async fn registration_refuses_dangerous_metadata(db: &TestDb) {
    let (_fake, app, _browser) = setup(db).await;
    for (body, error) in [
        (
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["http://evil.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://app.example/cb#x"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://app.example/a/../cb"]}),
            "invalid_redirect_uri",
        ),
        (json!({"redirect_uris": []}), "invalid_redirect_uri"),
        (json!({}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["password"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "response_types": ["token"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "client_name": "x".repeat(500)}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "logo_uri": "javascript:x"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": vec!["https://a.example/cb"; 11]}),
            "invalid_redirect_uri",
        ),
    ] {
        let reply = post_json(&app, "/register", body.clone()).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text());
        assert_eq!(reply.json()["error"], error, "{body}");
    }
    let not_json = awc::Client::default()
        .post(app.url("/register"))
        .insert_header(("Content-Type", "application/json"))
        .send_body("{not json")
        .await
        .unwrap();
    assert_eq!(not_json.status().as_u16(), 400);

    // The client id is ours, whatever the request says; a confidential client gets a secret.
    let reply = post_json(
        &app,
        "/register",
        json!({"client_id": "user_01ADMIN", "redirect_uris": ["https://app.example/cb"],
               "token_endpoint_auth_method": "client_secret_post", "scope": "openid unknown offline_access"}),
    )
    .await;
    assert_eq!(reply.status, 201);
    let doc = reply.json();
    assert_ne!(doc["client_id"], "user_01ADMIN");
    assert!(
        doc["client_secret"]
            .as_str()
            .unwrap()
            .starts_with("mcp_cs_")
    );
    assert_eq!(doc["client_secret_expires_at"], 0);
    assert_eq!(
        doc["scope"], "offline_access",
        "unsupported scopes are dropped"
    );
    assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
    // RFC 7591 default method: client_secret_basic.
    let reply = post_json(
        &app,
        "/register",
        json!({"redirect_uris": ["http://127.0.0.1:7/cb"]}),
    )
    .await;
    assert_eq!(
        reply.json()["token_endpoint_auth_method"],
        "client_secret_basic"
    );
}

async fn authorize_never_redirects_before_client_and_redirect_uri_are_valid(db: &TestDb) {
    let (_fake, app, browser) = setup(db).await;
    let client = register(&app, &browser).await;
    let (_, challenge) = pkce();
    let unknown = McpClient {
        client_id: "mcp_client_unknown".into(),
        client_secret: None,
        redirect_uri: client.redirect_uri.clone(),
    };
    let reply = browser
        .get(&authorize_url(&app, &unknown, &challenge, "s"))
        .await;
    assert_eq!(reply.status, 400);
    assert!(reply.header("location").is_none());
    for evil in [
        "https://evil.example/cb",
        "http://127.0.0.1:9999/other",
        "http://localhost:9999/callback",
    ] {
        let other = McpClient {
            client_id: client.client_id.clone(),
            client_secret: None,
            redirect_uri: evil.into(),
        };
        let reply = browser
            .get(&authorize_url(&app, &other, &challenge, "s"))
            .await;
        assert_eq!(reply.status, 400, "{evil}");
        assert!(reply.header("location").is_none(), "{evil}");
        assert!(reply.header("x-frame-options").is_some());
    }
    // A loopback redirect URI may use another port (RFC 8252 §7.3).
    let other_port = McpClient {
        client_id: client.client_id.clone(),
        client_secret: None,
        redirect_uri: "http://127.0.0.1:41234/callback".into(),
    };
    let reply = browser
        .get(&authorize_url(&app, &other_port, &challenge, "s"))
        .await;
    assert_eq!(reply.status, 302);
    assert!(
        reply
            .header("location")
            .unwrap()
            .contains("/consent?txn_id=")
    );
    // The authorization endpoint is not readable cross-origin.
    assert!(reply.header("access-control-allow-origin").is_none());
}

async fn authorize_errors_go_back_with_state_and_iss(db: &TestDb) {
    let (_fake, app, browser) = setup(db).await;
    let client = register(&app, &browser).await;
    let (_, challenge) = pkce();
    let base = authorize_url(&app, &client, &challenge, "st8");
    let cases = [
        (
            base.replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
        (
            base.replace("code_challenge_method=S256", "code_challenge_method=plain"),
            "invalid_request",
        ),
        (
            base.replace(
                &format!("code_challenge={challenge}"),
                "code_challenge=short",
            ),
            "invalid_request",
        ),
        (format!("{base}&scope=admin"), "invalid_scope"),
        (base.replace("%2Fmcp", "%2Fother"), "invalid_target"),
    ];
    for (url, error) in cases {
        let reply = browser.get(&url).await;
        assert_eq!(reply.status, 302, "{url}");
        let params = location_params(&reply);
        assert!(
            reply
                .header("location")
                .unwrap()
                .starts_with(&client.redirect_uri)
        );
        assert_eq!(params["error"], error, "{url}");
        assert_eq!(params["state"], "st8");
        assert_eq!(params["iss"], app.base_url);
        assert!(!params.contains_key("code"));
    }
    // A repeated parameter is refused outright.
    let reply = browser.get(&format!("{base}&state=again")).await;
    assert_eq!(reply.status, 400);
    assert!(reply.header("location").is_none());
}

/// Starts a login and returns (consent page reply, txn_id, csrf_token).
async fn start_consent(
    app: &ProxyApp,
    browser: &Browser,
    client: &McpClient,
) -> (Reply, String, String) {
    let (_, challenge) = pkce();
    let authorize = browser
        .get(&authorize_url(app, client, &challenge, "s1"))
        .await;
    assert_eq!(authorize.status, 302);
    let page = browser.get(&authorize.header("location").unwrap()).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let txn = hidden_field(&page.text(), "txn_id");
    let csrf = hidden_field(&page.text(), "csrf_token");
    (page, txn, csrf)
}

async fn consent_is_bound_to_the_browser_and_single_use(db: &TestDb) {
    let (fake, app, browser) = setup(db).await;
    let client = register_with(
        &app,
        &browser,
        json!({"token_endpoint_auth_method": "none", "client_name": "<script>alert(1)</script>"}),
    )
    .await;
    let (page, txn, csrf) = start_consent(&app, &browser, &client).await;
    assert!(
        !page.text().contains("<script>alert(1)"),
        "the client name is escaped"
    );
    assert!(page.text().contains("&lt;script&gt;"));
    assert!(
        page.text().contains(&client.redirect_uri),
        "the redirect URI is shown"
    );
    assert_eq!(page.header("x-frame-options").as_deref(), Some("DENY"));
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );

    // Another browser (no binding cookie) can neither see nor approve the request.
    let stranger = Browser::default();
    let consent_url = app.url(&format!("/consent?txn_id={txn}"));
    assert_eq!(stranger.get(&consent_url).await.status, 403);
    let forged = stranger
        .post_form(
            &app.url("/consent"),
            &[
                ("txn_id", &txn),
                ("csrf_token", &csrf),
                ("action", "approve"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);
    // The right browser with a wrong token is refused too.
    let wrong = browser
        .post_form(
            &app.url("/consent"),
            &[
                ("txn_id", &txn),
                ("csrf_token", "0000"),
                ("action", "approve"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 400);
    let bad_action = browser
        .post_form(
            &app.url("/consent"),
            &[("txn_id", &txn), ("csrf_token", &csrf), ("action", "maybe")],
        )
        .await;
    assert_eq!(bad_action.status, 400);
    assert_eq!(fake.calls(Endpoint::Authorize), 0, "nothing went upstream");
    // Approval works once.
    let ok = browser
        .post_form(
            &app.url("/consent"),
            &[
                ("txn_id", &txn),
                ("csrf_token", &csrf),
                ("action", "approve"),
            ],
        )
        .await;
    assert_eq!(ok.status, 302);
    assert!(
        ok.header("location")
            .unwrap()
            .starts_with(&format!("{}/oauth2/authorize", fake.issuer()))
    );
    let twice = browser
        .post_form(
            &app.url("/consent"),
            &[
                ("txn_id", &txn),
                ("csrf_token", &csrf),
                ("action", "approve"),
            ],
        )
        .await;
    assert_eq!(twice.status, 400);
}

async fn denial_reaches_the_client(db: &TestDb) {
    let (fake, app, browser) = setup(db).await;
    let client = register(&app, &browser).await;
    let (_, txn, csrf) = start_consent(&app, &browser, &client).await;
    let denied = browser
        .post_form(
            &app.url("/consent"),
            &[("txn_id", &txn), ("csrf_token", &csrf), ("action", "deny")],
        )
        .await;
    assert_eq!(denied.status, 302);
    let params = location_params(&denied);
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], "s1");
    assert_eq!(params["iss"], app.base_url);
    // The request is gone.
    assert_eq!(
        browser
            .get(&app.url(&format!("/consent?txn_id={txn}")))
            .await
            .status,
        400
    );

    // AuthKit's own denial is relayed the same way.
    fake.set_deny_authorization(true);
    let (_, txn, csrf) = start_consent(&app, &browser, &client).await;
    let approved = browser
        .post_form(
            &app.url("/consent"),
            &[
                ("txn_id", &txn),
                ("csrf_token", &csrf),
                ("action", "approve"),
            ],
        )
        .await;
    let upstream = browser.get(&approved.header("location").unwrap()).await;
    let back = browser.get(&upstream.header("location").unwrap()).await;
    assert_eq!(back.status, 302);
    let params = location_params(&back);
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], "s1");
    assert_eq!(params["iss"], app.base_url);
}

/// Runs a login up to AuthKit's redirect to our callback; returns the callback URL.
async fn until_callback(app: &ProxyApp, browser: &Browser, client: &McpClient) -> String {
    let (_, txn, csrf) = start_consent(app, browser, client).await;
    let approved = browser
        .post_form(
            &app.url("/consent"),
            &[
                ("txn_id", &txn),
                ("csrf_token", &csrf),
                ("action", "approve"),
            ],
        )
        .await;
    let upstream = browser.get(&approved.header("location").unwrap()).await;
    assert_eq!(upstream.status, 302);
    upstream.header("location").unwrap()
}

async fn callback_checks_browser_issuer_and_replay(db: &TestDb) {
    let (fake, app, browser) = setup(db).await;
    let client = register(&app, &browser).await;

    // Same login finished in another browser: refused, nothing exchanged upstream.
    let callback = until_callback(&app, &browser, &client).await;
    fake.reset_calls();
    assert_eq!(Browser::default().get(&callback).await.status, 403);
    assert_eq!(fake.calls(Endpoint::Token), 0);

    // A mixed-up issuer is refused.
    let callback = until_callback(&app, &browser, &client).await;
    let reply = browser
        .get(&format!("{callback}&iss=https%3A%2F%2Fevil.example"))
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(fake.calls(Endpoint::Token), 0);

    // Honoured once.
    let callback = until_callback(&app, &browser, &client).await;
    let first = browser.get(&callback).await;
    assert_eq!(first.status, 302);
    assert!(location_params(&first).contains_key("code"));
    assert_eq!(browser.get(&callback).await.status, 400);
    // Unknown state.
    assert_eq!(
        browser
            .get(&app.url("/auth/callback?state=nope&code=x"))
            .await
            .status,
        400
    );
}

async fn token_endpoint_refuses_bad_codes(db: &TestDb) {
    let (_fake, app, browser) = setup(db).await;
    let client = register(&app, &browser).await;
    let other = register(&app, &browser).await;
    let (verifier, challenge) = pkce();

    let form_error = |reply: &Reply| reply.json()["error"].as_str().unwrap().to_owned();
    // Wrong verifier; then another client; each burns nothing it should not.
    let code = login(&app, &browser, &client, &challenge).await;
    let wrong = token_request(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &"w".repeat(43)),
            ("client_id", &client.client_id),
        ],
    )
    .await;
    assert_eq!(wrong.status, 400);
    assert_eq!(form_error(&wrong), "invalid_grant");

    let code = login(&app, &browser, &client, &challenge).await;
    let stolen = token_request(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &verifier),
            ("client_id", &other.client_id),
        ],
    )
    .await;
    assert_eq!(form_error(&stolen), "invalid_grant");

    let code = login(&app, &browser, &client, &challenge).await;
    let moved = token_request(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &verifier),
            ("client_id", &client.client_id),
            ("redirect_uri", "http://127.0.0.1:9999/elsewhere"),
        ],
    )
    .await;
    assert_eq!(form_error(&moved), "invalid_grant");

    for (form, error) in [
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", "mcp_ac_x"),
                ("client_id", client.client_id.as_str()),
            ],
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("client_id", client.client_id.as_str()),
            ],
            "unsupported_grant_type",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", "a"),
                ("code", "b"),
                ("client_id", client.client_id.as_str()),
            ],
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", "garbage"),
                ("code_verifier", verifier.as_str()),
                ("client_id", client.client_id.as_str()),
            ],
            "invalid_grant",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("client_id", "mcp_client_nobody"),
            ],
            "invalid_client",
        ),
    ] {
        let reply = token_request(&app, &form).await;
        assert_eq!(form_error(&reply), error, "{form:?}");
        assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
    }
    let json_body = awc::Client::default()
        .post(app.url("/token"))
        .send_json(&json!({"grant_type": "authorization_code"}))
        .await
        .unwrap();
    assert_eq!(json_body.status().as_u16(), 400);
    let get = awc::Client::default()
        .get(app.url("/token"))
        .send()
        .await
        .unwrap();
    assert!(get.status().is_client_error());
}

async fn code_replay_revokes_what_the_code_issued(db: &TestDb) {
    let (_fake, app, browser) = setup(db).await;
    let client = register(&app, &browser).await;
    let (verifier, challenge) = pkce();
    let code = login(&app, &browser, &client, &challenge).await;
    let tokens = redeem(&app, &client, &code, &verifier).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(call_mcp(&app, access).await.status, 200);
    let replay = token_request(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &verifier),
            ("client_id", &client.client_id),
            ("redirect_uri", &client.redirect_uri),
        ],
    )
    .await;
    assert_eq!(replay.status, 400);
    assert_eq!(replay.json()["error"], "invalid_grant");
    assert_eq!(
        call_mcp(&app, access).await.status,
        401,
        "the first token died with the replay"
    );
}

async fn refresh_tokens_rotate_and_replays_end_the_grant(db: &TestDb) {
    let (_fake, app, browser) = setup(db).await;
    let client = register(&app, &browser).await;
    let other = register(&app, &browser).await;
    let (verifier, challenge) = pkce();
    let code = login(&app, &browser, &client, &challenge).await;
    let tokens = redeem(&app, &client, &code, &verifier).await;
    let rt0 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |rt: String, client_id: String, scope: Option<&'static str>| {
        let app = &app;
        async move {
            let mut form = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", rt.as_str()),
                ("client_id", client_id.as_str()),
            ];
            if let Some(scope) = scope {
                form.push(("scope", scope));
            }
            token_request(app, &form).await
        }
    };
    // Another client cannot use it, and the attempt does not burn it.
    let stolen = refresh(rt0.clone(), other.client_id.clone(), None).await;
    assert_eq!(stolen.json()["error"], "invalid_grant");
    // Widening is refused and burns nothing either.
    let wider = refresh(
        rt0.clone(),
        client.client_id.clone(),
        Some("offline_access admin"),
    )
    .await;
    assert_eq!(wider.json()["error"], "invalid_scope");
    let lost = refresh(rt0.clone(), client.client_id.clone(), None).await;
    assert_eq!(lost.status, 200, "{}", lost.text());
    let rt1_lost = lost.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1_lost, rt0);

    // Grace: the answer carrying RT1 was "lost"; within the grace RT0 gets the same pair again
    // (never a second one).
    let retry = refresh(rt0.clone(), client.client_id.clone(), None).await;
    assert_eq!(retry.status, 200, "{}", retry.text());
    let rt1 = retry.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(rt1, rt1_lost);

    // RT1 is used: from now on RT0 is a replay, which ends the grant (RT2's access token too).
    let r2 = refresh(rt1, client.client_id.clone(), None).await;
    assert_eq!(r2.status, 200, "{}", r2.text());
    let r2 = r2.json();
    let at2 = r2["access_token"].as_str().unwrap().to_owned();
    assert_eq!(call_mcp(&app, &at2).await.status, 200);
    let replay = refresh(rt0, client.client_id.clone(), None).await;
    assert_eq!(replay.json()["error"], "invalid_grant");
    assert_eq!(call_mcp(&app, &at2).await.status, 401);
    let after = refresh(
        r2["refresh_token"].as_str().unwrap().to_owned(),
        client.client_id.clone(),
        None,
    )
    .await;
    assert_eq!(
        after.json()["error"],
        "invalid_grant",
        "the whole grant is revoked"
    );
}

async fn confidential_clients_authenticate_with_their_registered_method(db: &TestDb) {
    let (_fake, app, browser) = setup(db).await;
    let basic = register_with(
        &app,
        &browser,
        json!({"token_endpoint_auth_method": "client_secret_basic"}),
    )
    .await;
    let secret = basic.client_secret.clone().unwrap();
    let (verifier, challenge) = pkce();
    let code = login(&app, &browser, &basic, &challenge).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
        ("redirect_uri", basic.redirect_uri.as_str()),
    ];
    let send = |auth: Option<(String, String)>, extra: Vec<(&'static str, String)>| {
        let app = &app;
        let mut all: Vec<(&str, String)> = form.iter().map(|(k, v)| (*k, v.to_string())).collect();
        all.extend(extra);
        async move {
            let mut req = awc::Client::default().post(app.url("/token"));
            if let Some((id, secret)) = auth {
                req = req.basic_auth(id, secret);
            }
            Reply::read(req.send_form(&all).await.unwrap()).await
        }
    };
    // Wrong secret with Basic: 401 and a Basic challenge; the code survives.
    let wrong = send(Some((basic.client_id.clone(), "nope".into())), vec![]).await;
    assert_eq!(wrong.status, 401);
    assert!(
        wrong
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );
    // The registered method is enforced: the secret in the body is refused.
    let post = send(
        None,
        vec![
            ("client_id", basic.client_id.clone()),
            ("client_secret", secret.clone()),
        ],
    )
    .await;
    assert_eq!(post.status, 401);
    assert_eq!(post.json()["error"], "invalid_client");
    // Two methods at once are refused.
    let both = send(
        Some((basic.client_id.clone(), secret.clone())),
        vec![("client_secret", secret.clone())],
    )
    .await;
    assert_eq!(both.status, 400);
    let ok = send(Some((basic.client_id.clone(), secret)), vec![]).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
}

async fn revocation_follows_rfc7009(db: &TestDb) {
    let (_fake, app, browser) = setup(db).await;
    let client = register(&app, &browser).await;
    let other = register(&app, &browser).await;
    let (verifier, challenge) = pkce();
    let code = login(&app, &browser, &client, &challenge).await;
    let tokens = redeem(&app, &client, &code, &verifier).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    // Unknown tokens and other clients' tokens: 200, nothing happens.
    for (token, client_id) in [("garbage", &client.client_id), (access, &other.client_id)] {
        let reply = token_request_to(
            &app,
            "/revoke",
            &[("token", token), ("client_id", client_id)],
        )
        .await;
        assert_eq!(reply.status, 200);
    }
    assert_eq!(call_mcp(&app, access).await.status, 200);
    // A wrong hint does not matter; revoking the access token leaves the refresh token alive.
    let reply = token_request_to(
        &app,
        "/revoke",
        &[
            ("token", access),
            ("token_type_hint", "refresh_token"),
            ("client_id", &client.client_id),
        ],
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(call_mcp(&app, access).await.status, 401);
    let refreshed = token_request(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &client.client_id),
        ],
    )
    .await;
    assert_eq!(refreshed.status, 200);
    // Unauthenticated revocation is refused.
    let reply = token_request_to(
        &app,
        "/revoke",
        &[("token", access), ("client_id", "mcp_client_nobody")],
    )
    .await;
    assert_eq!(reply.status, 401);
}

async fn upstream_failures_are_reported_not_leaked(db: &TestDb) {
    let (fake, app, browser) = setup(db).await;
    let client = register(&app, &browser).await;
    // Slow: longer than the 2 s timeout the test apps use.
    for failure in [
        Failure::ServerError,
        Failure::Down,
        Failure::Slow(Duration::from_secs(3)),
    ] {
        let callback = until_callback(&app, &browser, &client).await;
        fake.set_failure(failure.clone());
        let reply = browser.get(&callback).await;
        fake.set_failure(Failure::None);
        assert_eq!(reply.status, 302, "{failure:?}");
        let params = location_params(&reply);
        assert_eq!(params["error"], "temporarily_unavailable", "{failure:?}");
        assert_eq!(params["state"], "s1");
        assert_eq!(params["iss"], app.base_url);
        assert!(!params.contains_key("code"));
        assert!(
            !reply.header("location").unwrap().contains("127.0.0.1:")
                || !reply.header("location").unwrap().contains(&fake.issuer())
        );
    }
    // AuthKit refusing the code exchange (here: our secret changed at AuthKit).
    let callback = until_callback(&app, &browser, &client).await;
    fake.register_connect_app(
        crate::proxy_app::CONNECT_CLIENT_ID,
        "rotated-secret",
        &[&app.url("/auth/callback")],
    );
    let reply = browser.get(&callback).await;
    assert_eq!(location_params(&reply)["error"], "server_error");
}

async fn upstream_session_state_reaches_our_tokens(db: &TestDb) {
    use actix_mcp_auth::{Clock, store::StoreOptions};

    let fake = FakeAuthKit::start();
    // AuthKit access tokens that are always about to expire: every session check refreshes.
    fake.set_access_token_ttl(Duration::from_secs(5));
    // The caches age by the store's clock: the test moves it past their TTL.
    let clock = Clock::adjustable();
    let store = db
        .store_with_options(StoreOptions::default().clock(clock.clone()))
        .await;
    let app = ProxyApp::spawn(&fake, store, |b| {
        b.userinfo_cache_ttl(Duration::from_secs(1))
            .token_cache_ttl(Duration::from_secs(1))
    })
    .await;
    let browser = Browser::default();
    let client = register(&app, &browser).await;
    let (verifier, challenge) = pkce();
    let code = login(&app, &browser, &client, &challenge).await;
    let tokens = redeem(&app, &client, &code, &verifier).await;
    let access = tokens["access_token"].as_str().unwrap();
    fake.reset_calls();
    assert_eq!(call_mcp(&app, access).await.status, 200);
    assert_eq!(
        fake.calls(Endpoint::Token),
        1,
        "transparent upstream refresh"
    );
    assert_eq!(
        fake.last_token_params().unwrap()["grant_type"],
        "refresh_token"
    );
    assert_eq!(fake.calls(Endpoint::UserInfo), 1);
    // Cached: no upstream call within the TTL.
    assert_eq!(call_mcp(&app, access).await.status, 200);
    assert_eq!(fake.calls(Endpoint::UserInfo), 1);

    // AuthKit down after the cache expired: 503, the token stays valid for later.
    clock.advance(Duration::from_secs(2));
    fake.set_failure(Failure::Down);
    let reply = call_mcp(&app, access).await;
    assert_eq!(reply.status, 503);
    assert!(reply.header("retry-after").is_some());
    fake.set_failure(Failure::None);
    assert_eq!(call_mcp(&app, access).await.status, 200);

    // AuthKit ends the session: our token stops working within the cache TTL.
    fake.revoke_sessions_for("user_01TEST");
    clock.advance(Duration::from_secs(2));
    assert_eq!(call_mcp(&app, access).await.status, 401);
}

async fn a_lost_encryption_key_forces_a_new_login_not_an_outage(db: &TestDb) {
    use actix_mcp_auth::store::Keyring;

    let fake = FakeAuthKit::start();
    let before = ProxyApp::spawn(&fake, db.store().await, |b| b).await;
    let browser = Browser::default();
    let client = register(&before, &browser).await;
    let (verifier, challenge) = pkce();
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let code = login(&before, &browser, &client, &challenge).await;
        sessions.push(redeem(&before, &client, &code, &verifier).await);
    }
    // Restarted with another key: the sealed AuthKit tokens cannot be opened any more.
    let other_key = Keyring::from_config(&crate::store_support::key_b64(99)).unwrap();
    let after = ProxyApp::spawn(&fake, db.store_with_keys(other_key).await, |b| b).await;

    // Refresh first: refused (and the grant ended), then its access token is refused too.
    let refresh = sessions[0]["refresh_token"].as_str().unwrap();
    let refreshed = token_request(
        &after,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &client.client_id),
        ],
    )
    .await;
    assert_eq!(refreshed.status, 400, "{}", refreshed.text());
    assert_eq!(refreshed.json()["error"], "invalid_grant");
    let reply = call_mcp(&after, sessions[0]["access_token"].as_str().unwrap()).await;
    assert_eq!(reply.status, 401, "{}", reply.text());

    // Bearer check first: 401 invalid_token (not a 503 the client would retry forever).
    let reply = call_mcp(&after, sessions[1]["access_token"].as_str().unwrap()).await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    assert!(reply.challenge().contains("invalid_token"));
}

async fn endpoints_are_rate_limited_per_client(db: &TestDb) {
    use actix_mcp_auth::{Limit, RateLimits};

    let fake = FakeAuthKit::start();
    let limits = RateLimits::default().register(Limit::new(2, Duration::from_secs(3600)));
    let app = ProxyApp::spawn(&fake, db.store().await, |b| b.rate_limits(limits)).await;
    let body =
        json!({"redirect_uris": ["http://127.0.0.1:9/cb"], "token_endpoint_auth_method": "none"});
    for _ in 0..2 {
        assert_eq!(post_json(&app, "/register", body.clone()).await.status, 201);
    }
    let limited = post_json(&app, "/register", body.clone()).await;
    assert_eq!(limited.status, 429);
    let wait: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=1800).contains(&wait), "{wait}");
    assert_eq!(limited.json()["error"], "temporarily_unavailable");
    // Other endpoints have their own budgets.
    let token = token_request(&app, &[("grant_type", "refresh_token"), ("client_id", "x")]).await;
    assert_eq!(token.status, 401);

    // Switched off: no limit.
    let open = ProxyApp::spawn(&fake, db.store().await, |b| {
        b.rate_limits(RateLimits::disabled())
    })
    .await;
    for _ in 0..5 {
        assert_eq!(
            post_json(&open, "/register", body.clone()).await.status,
            201
        );
    }
}

async fn remembered_consent_is_reused_only_where_it_was_given(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let app = ProxyApp::spawn(&fake, db.store().await, |b| {
        b.remember_consent(Duration::from_secs(3600))
    })
    .await;
    let browser = Browser::default();
    let client = register(&app, &browser).await;
    let (_, challenge) = pkce();

    // First login: the page offers "remember"; approve with it.
    let (page, txn, csrf) = start_consent(&app, &browser, &client).await;
    assert!(page.text().contains("name=\"remember\""));
    assert!(
        page.text().contains("Remember my choice for 1 hour"),
        "the page explains it"
    );
    let approved = browser
        .post_form(
            &app.url("/consent"),
            &[
                ("txn_id", &txn),
                ("csrf_token", &csrf),
                ("action", "approve"),
                ("remember", "1"),
            ],
        )
        .await;
    assert_eq!(approved.status, 302);
    assert!(
        approved
            .headers
            .get_all("set-cookie")
            .any(|c| c.to_str().unwrap().starts_with("mcp_auth_device="))
    );

    // Same browser, user-initiated navigation: straight to AuthKit, and the login completes.
    let again = browser
        .navigate(&authorize_url(&app, &client, &challenge, "s2"))
        .await;
    assert_eq!(again.status, 302);
    let location = again.header("location").unwrap();
    assert!(
        location.starts_with(&format!("{}/oauth2/authorize", fake.issuer())),
        "{location}"
    );
    let upstream = browser.get(&location).await;
    let done = browser.get(&upstream.header("location").unwrap()).await;
    assert_eq!(done.status, 302);
    assert!(location_params(&done).contains_key("code"));

    // A cross-site (or header-less) request, or another browser: asked again.
    let cross_site = browser
        .get(&authorize_url(&app, &client, &challenge, "s3"))
        .await;
    assert!(
        cross_site
            .header("location")
            .unwrap()
            .contains("/consent?txn_id=")
    );
    let stranger = Browser::default();
    let other = stranger
        .navigate(&authorize_url(&app, &client, &challenge, "s4"))
        .await;
    assert!(
        other
            .header("location")
            .unwrap()
            .contains("/consent?txn_id=")
    );
    // Another client, same browser: asked again.
    let second_client = register(&app, &browser).await;
    let other_client = browser
        .navigate(&authorize_url(&app, &second_client, &challenge, "s5"))
        .await;
    assert!(
        other_client
            .header("location")
            .unwrap()
            .contains("/consent?txn_id=")
    );

    // The client's redirect URIs change (as a metadata document can): never silent. The page
    // comes back and says why.
    let moved_uris = json!([client.redirect_uri, "http://127.0.0.1:9999/elsewhere"]).to_string();
    sqlx::query("UPDATE mcp_auth_clients SET redirect_uris = $1 WHERE client_id = $2")
        .bind(moved_uris)
        .bind(&client.client_id)
        .execute(db.sql().await)
        .await
        .unwrap();
    let moved = browser
        .navigate(&authorize_url(&app, &client, &challenge, "s6"))
        .await;
    let consent_url = moved.header("location").unwrap();
    assert!(consent_url.contains("/consent?txn_id="), "{consent_url}");
    let page = browser.get(&consent_url).await;
    assert_eq!(page.status, 200);
    assert!(
        page.text().contains("changed where it sends you"),
        "{}",
        page.text()
    );

    // Without the option, no box is offered.
    let plain = ProxyApp::spawn(&fake, db.store().await, |b| b).await;
    let plain_client = register(&plain, &browser).await;
    let (page, _, _) = start_consent(&plain, &browser, &plain_client).await;
    assert!(!page.text().contains("name=\"remember\""));
}
