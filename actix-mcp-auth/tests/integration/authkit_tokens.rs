//! AuthKit mode: the bearer check, token by token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_mcp_auth::TokenVerifier as _;
use actix_mcp_auth_testing::{Endpoint, Failure, FakeAuthKit};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::app::TestApp;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Asserts a 401 `invalid_token` with the full challenge.
fn assert_invalid_token(reply: &crate::app::Reply, app: &TestApp) {
    assert_eq!(reply.status, 401, "body: {}", reply.text());
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
async fn no_token_gets_a_bare_challenge() {
    let app = TestApp::spawn_with(|b| b.required_scopes(["openid", "profile"])).await;
    // `Bearer` with nothing (or only whitespace) after it carries no credentials either: the
    // client must get the bare challenge that starts discovery, not a 400.
    for auth in [
        None,
        Some("Basic dXNlcjpwYXNz"),
        Some("Bearer"),
        Some("Bearer "),
        Some("Bearer  \t "),
    ] {
        let reply = app.call_mcp(auth).await;
        assert_eq!(reply.status, 401, "{auth:?}");
        assert_eq!(
            reply.challenge(),
            format!(
                "Bearer scope=\"openid profile\", resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
                app.base_url
            )
        );
        assert!(reply.body.is_empty());
        assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
        assert!(
            reply
                .header("access-control-expose-headers")
                .unwrap()
                .contains("WWW-Authenticate")
        );
    }
}

#[actix_web::test]
async fn without_required_scopes_the_challenge_has_no_scope() {
    let app = TestApp::spawn().await;
    let challenge = app.call_mcp(None).await.challenge();
    assert!(!challenge.contains("scope="), "{challenge}");
    assert!(!challenge.contains("error="), "{challenge}");
}

#[actix_web::test]
async fn a_valid_token_reaches_the_handler_with_its_claims() {
    let app = TestApp::spawn().await;
    let token = app.token(
        json!({"sub": "user_42", "scope": "openid email", "azp": "client_7", "org_id": "org_1"}),
    );
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let reply = app.call_mcp(Some(&format!("{scheme} {token}"))).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let body = reply.json();
        assert_eq!(body["subject"], "user_42");
        assert_eq!(body["client_id"], "client_7");
        assert_eq!(body["scopes"], json!(["openid", "email"]));
        assert_eq!(body["claims"]["org_id"], "org_1");
    }
}

#[actix_web::test]
async fn the_token_in_the_query_string_is_ignored() {
    let app = TestApp::spawn().await;
    let token = app.token(json!({}));
    let reply = app
        .client
        .post(app.url(&format!("/mcp?access_token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 401);
}

#[actix_web::test]
async fn missing_scopes_get_403_listing_every_required_scope() {
    let app = TestApp::spawn_with(|b| b.required_scopes(["mcp:read", "mcp:write"])).await;
    let lacking = app.token(json!({"scope": "mcp:read"}));
    let reply = app.call_with(&lacking).await;
    assert_eq!(reply.status, 403);
    // Verified once, the token is cached: served from the cache, it is still refused.
    assert_eq!(app.call_with(&lacking).await.status, 403);
    let challenge = reply.challenge();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"mcp:read mcp:write\""),
        "{challenge}"
    );
    assert!(challenge.contains("resource_metadata="), "{challenge}");
    assert_eq!(reply.json()["error"], "insufficient_scope");
    let ok = app
        .call_with(&app.token(json!({"scp": ["mcp:write", "mcp:read"]})))
        .await;
    assert_eq!(ok.status, 200);
}

#[actix_web::test]
async fn malformed_headers_are_refused_without_verification() {
    let app = TestApp::spawn().await;
    let huge = format!("Bearer {}", "a".repeat(9000));
    for value in ["Bearer a\"b", "Bearer a b", huge.as_str()] {
        let reply = app.call_mcp(Some(value)).await;
        assert_eq!(reply.status, 400, "{value:.20}");
        assert!(reply.challenge().contains("error=\"invalid_request\""));
    }
    let two = app
        .client
        .post(app.url("/mcp"))
        .append_header(("Authorization", "Bearer a"))
        .append_header(("Authorization", "Bearer b"))
        .send()
        .await
        .unwrap();
    assert_eq!(two.status().as_u16(), 400);
    assert_eq!(
        app.fake.calls(Endpoint::Jwks),
        0,
        "the verifier was never asked"
    );
}

#[actix_web::test]
async fn garbage_tokens_are_invalid() {
    let app = TestApp::spawn().await;
    for token in ["garbage", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30.AAAA"] {
        assert_invalid_token(&app.call_with(token).await, &app);
    }
}

#[actix_web::test]
async fn time_claims_are_enforced_with_seconds_of_leeway() {
    let app = TestApp::spawn().await;
    let t = now();
    for claims in [
        json!({"exp": t - 30, "iat": t - 330}),
        json!({"nbf": t + 60}),
        json!({"exp": null}),
    ] {
        assert_invalid_token(&app.call_with(&app.token(claims)).await, &app);
    }
    // A few seconds of clock skew are tolerated.
    let skewed = app.token(json!({"nbf": t + 2}));
    assert_eq!(app.call_with(&skewed).await.status, 200);
}

#[actix_web::test]
async fn issuer_must_match_exactly() {
    let app = TestApp::spawn().await;
    for iss in [
        format!("{}/", app.fake.issuer()),
        "https://api.workos.com/user_management/client_1".to_owned(),
    ] {
        assert_invalid_token(&app.call_with(&app.token(json!({"iss": iss}))).await, &app);
    }
}

#[actix_web::test]
async fn audience_must_name_this_resource() {
    let app = TestApp::spawn_with(|b| b.accept_audience("client_ENV")).await;
    let other = format!("{}/other", app.base_url);
    for aud in [
        json!(other),
        json!(null),
        json!(["https://elsewhere.example/mcp"]),
    ] {
        assert_invalid_token(&app.call_with(&app.token(json!({"aud": aud}))).await, &app);
    }
    let list = json!(["https://elsewhere.example", app.resource()]);
    assert_eq!(
        app.call_with(&app.token(json!({"aud": list}))).await.status,
        200
    );
    assert_eq!(
        app.call_with(&app.token(json!({"aud": "client_ENV"})))
            .await
            .status,
        200,
        "explicitly accepted extra audience"
    );
}

#[actix_web::test]
async fn subject_is_required() {
    let app = TestApp::spawn().await;
    assert_invalid_token(&app.call_with(&app.token(json!({"sub": null}))).await, &app);
}

#[actix_web::test]
async fn alg_none_and_hmac_with_the_public_key_are_rejected() {
    let app = TestApp::spawn().await;
    let claims =
        json!({"iss": app.fake.issuer(), "aud": app.resource(), "sub": "u", "exp": now() + 300});
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    assert_invalid_token(
        &app.call_mcp(Some(&format!("Bearer {unsigned}"))).await,
        &app,
    );

    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(app.fake.current_kid());
    let hs256 = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(app.fake.public_key_pem().as_bytes()),
    )
    .unwrap();
    assert_invalid_token(&app.call_with(&hs256).await, &app);
}

#[actix_web::test]
async fn critical_header_extensions_are_rejected() {
    let app = TestApp::spawn().await;
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(app.fake.current_kid());
    header.crit = Some(vec!["exp".into()]);
    let token = app
        .fake
        .mint_with_header(header, json!({"aud": app.resource()}));
    assert_invalid_token(&app.call_with(&token).await, &app);
}

#[actix_web::test]
async fn tampered_and_forged_signatures_are_rejected() {
    let app = TestApp::spawn().await;
    let token = app.token(json!({}));
    // Swap the payload for another one: the signature no longer matches.
    let mut parts: Vec<&str> = token.split('.').collect();
    let evil_payload = URL_SAFE_NO_PAD.encode(
        json!({"iss": app.fake.issuer(), "aud": app.resource(), "sub": "admin", "exp": now() + 300})
            .to_string(),
    );
    parts[1] = &evil_payload;
    assert_invalid_token(&app.call_with(&parts.join(".")).await, &app);
    let forged = app
        .fake
        .mint_with_unpublished_key(json!({"aud": app.resource()}));
    assert_invalid_token(&app.call_with(&forged).await, &app);
}

#[actix_web::test]
async fn unknown_kids_cannot_cause_a_refetch_storm() {
    let app = TestApp::spawn_with(|b| b.jwks_min_refresh_interval(Duration::from_secs(60))).await;
    assert_eq!(app.call_with(&app.token(json!({}))).await.status, 200);
    for i in 0..30 {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(format!("forged-{i}"));
        let token = app
            .fake
            .mint_with_header(header, json!({"aud": app.resource()}));
        assert_invalid_token(&app.call_with(&token).await, &app);
    }
    assert!(
        app.fake.calls(Endpoint::Jwks) <= 2,
        "{} JWKS fetches for 30 forged kids",
        app.fake.calls(Endpoint::Jwks)
    );
}

#[actix_web::test]
async fn key_rotation_is_picked_up_without_restart() {
    let app = TestApp::spawn().await;
    assert_eq!(app.call_with(&app.token(json!({}))).await.status, 200);
    assert_eq!(app.fake.calls(Endpoint::Jwks), 1);
    app.fake.rotate_keys();
    app.fake.retire_old_keys();
    let new_token = app.token(json!({"jti": "after-rotation"}));
    assert_eq!(app.call_with(&new_token).await.status, 200);
    assert_eq!(
        app.fake.calls(Endpoint::Jwks),
        2,
        "one refetch for the unknown kid"
    );
}

#[actix_web::test]
async fn keys_replaced_under_the_same_kid_are_picked_up() {
    let app = TestApp::spawn().await;
    assert_eq!(app.call_with(&app.token(json!({}))).await.status, 200);
    app.fake.replace_key_same_kid();
    let new_token = app.token(json!({"jti": "same-kid"}));
    assert_eq!(app.call_with(&new_token).await.status, 200);
    assert_eq!(app.fake.calls(Endpoint::Jwks), 2);
}

#[actix_web::test]
async fn jwks_outage_without_keys_is_503_not_401() {
    let fake = FakeAuthKit::start();
    fake.set_failure(Failure::Down);
    let app = TestApp::spawn_on(fake, |b| b).await;
    let token = app.token(json!({}));
    let reply = app.call_with(&token).await;
    assert_eq!(reply.status, 503);
    assert!(reply.header("retry-after").is_some());
    assert!(reply.header("www-authenticate").is_none());
    assert!(!reply.text().contains("127.0.0.1"));
    app.fake.set_failure(Failure::ServerError);
    assert_eq!(app.call_with(&token).await.status, 503);
    app.fake.set_failure(Failure::None);
    assert_eq!(
        app.call_with(&token).await.status,
        200,
        "recovers without restart"
    );
}

#[actix_web::test]
async fn cached_keys_survive_a_jwks_outage() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.call_with(&app.token(json!({"jti": "1"}))).await.status,
        200
    );
    app.fake.set_failure(Failure::Down);
    let fresh = app.token(json!({"jti": "2"}));
    assert_eq!(
        app.call_with(&fresh).await.status,
        200,
        "known kid, cached key"
    );
}

#[actix_web::test]
async fn verified_tokens_are_served_from_the_cache() {
    let app = TestApp::spawn().await;
    let token = app.token(json!({}));
    let verifier = app.provider.verifier();
    assert!(verifier.verify_cached(&token).is_none(), "not verified yet");
    assert_eq!(app.call_with(&token).await.status, 200);
    assert_eq!(verifier.cached_tokens(), 1);
    assert!(verifier.verify_cached(&token).is_some());
    assert!(verifier.verify_cached(&app.token(json!({}))).is_none());
    // Even with the keys gone upstream, a cached token needs no key.
    app.fake.rotate_keys();
    app.fake.retire_old_keys();
    app.fake.set_failure(Failure::Down);
    assert_eq!(app.call_with(&token).await.status, 200);
    assert_eq!(app.provider.verifier().cached_tokens(), 1);
}

#[actix_web::test]
async fn expired_tokens_are_not_served_from_the_cache() {
    // The verifier's clock, moved past the expiry instead of sleeping through it.
    let clock = actix_mcp_auth::Clock::adjustable();
    let app = TestApp::spawn_with(|b| b.leeway(Duration::ZERO).clock(clock.clone())).await;
    let token = app.token(json!({"exp": now() + 2}));
    assert_eq!(app.call_with(&token).await.status, 200);
    assert_eq!(app.call_with(&token).await.status, 200, "from the cache");
    clock.advance(Duration::from_secs(3));
    assert!(app.provider.verifier().verify_cached(&token).is_none());
    assert_invalid_token(&app.call_with(&token).await, &app);
}

#[actix_web::test]
async fn cors_preflight_and_readable_challenges() {
    let app = TestApp::spawn().await;
    let preflight = app
        .client
        .request(actix_web::http::Method::OPTIONS, app.url("/mcp"))
        .insert_header(("Origin", "https://inspector.example"))
        .insert_header(("Access-Control-Request-Method", "POST"))
        .insert_header(("Access-Control-Request-Headers", "authorization"))
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status().as_u16(), 204);
    let allowed = preflight
        .headers()
        .get("access-control-allow-headers")
        .unwrap();
    assert!(allowed.to_str().unwrap().contains("Authorization"));
    assert!(allowed.to_str().unwrap().contains("Mcp-Method, Mcp-Name"));
    let reply = app
        .client
        .post(app.url("/mcp"))
        .insert_header(("Origin", "https://inspector.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 401);
    assert_eq!(
        reply.headers().get("access-control-allow-origin").unwrap(),
        "*"
    );
}

#[actix_web::test]
async fn a_provider_can_start_while_authkit_is_down() {
    let fake = FakeAuthKit::start();
    fake.set_failure(Failure::Down);
    let app = TestApp::spawn_on(fake, |b| b).await;
    assert_eq!(
        app.get("/.well-known/oauth-protected-resource/mcp")
            .await
            .status,
        200
    );
    assert_eq!(app.call_mcp(None).await.status, 401);
}
