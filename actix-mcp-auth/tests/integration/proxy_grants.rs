//! Proxy mode, grants a user and an operator can see and end: every revocation path (admin
//! API, the `Grants` service for a user, a client's `/revoke`, replays), on the replica that
//! revoked (at once) and on another one (after its token-cache window, by moving the shared
//! clock), the admin API's protection and endpoints, and the audit rows each path writes.

use std::time::Duration;

use actix_mcp_auth::{Clock, store::StoreOptions};
use actix_mcp_auth_testing::FakeAuthKit;
use serde_json::{Value, json};

use crate::{
    app::Reply,
    proxy_app::{
        ADMIN_TOKEN, Browser, McpClient, ProxyApp, call_mcp, login, pkce, redeem, register,
        register_with, token_request,
    },
    proxy_tokens::grant_of,
    store_support::{TestDb, client as client_row, insert_client, token_hash},
};

crate::store_support::http_tests!(
    revocation_is_immediate_here_and_within_the_cache_window_on_other_replicas,
    a_user_ends_only_their_own_grants,
    admin_api_refuses_requests_without_the_secret,
    admin_api_lists_and_revokes_per_grant_user_and_client,
    admin_api_decodes_url_client_ids_and_subjects,
    every_revocation_path_is_audited_without_secrets,
);

/// The token-cache window of these tests (the default): other replicas may keep accepting a
/// revoked token this long.
const CACHE_WINDOW: Duration = Duration::from_secs(30);
/// Refresh grace of these tests: tests leave it by moving the clock.
const GRACE: Duration = Duration::from_secs(60);
/// Audit retention of these tests.
const RETENTION: Duration = Duration::from_secs(86_400);

/// Two replicas over one database, sharing one adjustable clock.
async fn two_replicas(db: &TestDb) -> (FakeAuthKit, ProxyApp, ProxyApp, Clock) {
    let fake = FakeAuthKit::start();
    let clock = Clock::adjustable();
    let store = || {
        db.store_with_options(
            StoreOptions::default()
                .clock(clock.clone())
                .audit_retention(RETENTION),
        )
    };
    let a = ProxyApp::spawn(&fake, store().await, |b| {
        b.refresh_grace(GRACE).token_cache_ttl(CACHE_WINDOW)
    })
    .await;
    let b = ProxyApp::spawn(&fake, store().await, |b| {
        b.base_url(&a.base_url)
            .refresh_grace(GRACE)
            .token_cache_ttl(CACHE_WINDOW)
    })
    .await;
    (fake, a, b, clock)
}

/// Registers a client (named `name`), logs in on `app` and redeems the code.
async fn logged_in(app: &ProxyApp, name: &str) -> (McpClient, Value, String) {
    let browser = Browser::default();
    let client = register_with(
        app,
        &browser,
        json!({"token_endpoint_auth_method": "none", "client_name": name}),
    )
    .await;
    let (verifier, challenge) = pkce();
    let code = login(app, &browser, &client, &challenge).await;
    let tokens = redeem(app, &client, &code, &verifier).await;
    (client, tokens, code)
}

fn access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().expect("access token")
}

fn refresh(tokens: &Value) -> &str {
    tokens["refresh_token"].as_str().expect("refresh token")
}

/// A request to the admin API of `app` with `Authorization: Bearer <token>` when given.
async fn admin_call(app: &ProxyApp, method: &str, path: &str, token: Option<&str>) -> Reply {
    let client = awc::Client::default();
    let url = app.url(&format!("/admin{path}"));
    let method = actix_web::http::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = client.request(method, url);
    if let Some(token) = token {
        request = request.insert_header(("Authorization", format!("Bearer {token}")));
    }
    Reply::read(request.send().await.expect("admin request")).await
}

/// An authorized admin request that must succeed; its JSON.
async fn admin_ok(app: &ProxyApp, method: &str, path: &str) -> Value {
    let reply = admin_call(app, method, path, Some(ADMIN_TOKEN)).await;
    assert_eq!(reply.status, 200, "{method} {path}: {}", reply.text());
    assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
    reply.json()
}

/// A live grant row written directly, with placeholder upstream tokens (listing and revoking
/// never open them).
async fn insert_grant(db: &TestDb, grant_id: &str, subject: &str, client_id: &str) {
    let now = Clock::system().now();
    sqlx::query(
        "INSERT INTO mcp_auth_grants (grant_id, subject, client_id, scopes, resource, key_id, \
         upstream_access_token, upstream_version, created_at, expires_at) \
         VALUES ($1, $2, $3, 'openid', NULL, 'k', 'sealed', 0, $4, $5)",
    )
    .bind(grant_id)
    .bind(subject)
    .bind(client_id)
    .bind(now)
    .bind(now + 3600)
    .execute(db.sql().await)
    .await
    .unwrap();
}

/// (kind, actor, detail) of the audit entries of `grant_id`, oldest first (entries of one
/// second in no particular order), through the admin API.
async fn audit_kinds(app: &ProxyApp, grant_id: &str) -> Vec<(String, String, Value)> {
    let body = admin_ok(app, "GET", &format!("/audit?grant_id={grant_id}")).await;
    let entries: Vec<(String, String, Value)> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| {
            assert_eq!(e["grant_id"], json!(grant_id));
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
                e["detail"].clone(),
            )
        })
        .collect();
    entries
}

async fn revocation_is_immediate_here_and_within_the_cache_window_on_other_replicas(db: &TestDb) {
    let (_fake, a, b, clock) = two_replicas(db).await;
    let (client, tokens, _) = logged_in(&a, "Replica test").await;
    let token = access(&tokens);
    // Both replicas verified (and cached) the token.
    assert_eq!(call_mcp(&a, token).await.status, 200);
    assert_eq!(call_mcp(&b, token).await.status, 200);
    let grant_id = grant_of(db, token).await;

    let revoked = admin_ok(&a, "DELETE", &format!("/grants/{grant_id}")).await;
    assert_eq!(revoked, json!({"revoked": [grant_id]}));
    // The replica that revoked refuses the token at once.
    let refused = call_mcp(&a, token).await;
    assert_eq!(refused.status, 401);
    assert!(
        refused.challenge().contains("invalid_token"),
        "{}",
        refused.challenge()
    );
    // The other replica still answers from its cache within the window ...
    clock.advance(CACHE_WINDOW - Duration::from_secs(2));
    assert_eq!(call_mcp(&b, token).await.status, 200, "cached on B");
    // ... and refuses once it has passed.
    clock.advance(Duration::from_secs(2));
    assert_eq!(call_mcp(&b, token).await.status, 401);
    // The refresh token died with the grant.
    let reply = token_request(
        &b,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh(&tokens)),
            ("client_id", &client.client_id),
        ],
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.json()["error"], "invalid_grant");
    // Revoking again finds nothing.
    let again = admin_call(
        &b,
        "DELETE",
        &format!("/grants/{grant_id}"),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(again.status, 404);
    assert_eq!(again.json()["error"], "not_found");
}

async fn a_user_ends_only_their_own_grants(db: &TestDb) {
    let (_fake, a, b, clock) = two_replicas(db).await;
    let (_, mine, _) = logged_in(&a, "Mine").await;
    let (_, also_mine, _) = logged_in(&a, "Also mine").await;
    let grant_id = grant_of(db, access(&mine)).await;
    assert_eq!(call_mcp(&b, access(&mine)).await.status, 200);

    let grants = a.provider.grants();
    let stranger = grants.for_user("user_someone_else");
    assert!(stranger.list().await.unwrap().is_empty());
    assert!(!stranger.revoke(&grant_id).await.unwrap(), "not theirs");
    assert_eq!(call_mcp(&a, access(&mine)).await.status, 200);

    let me = grants.for_user("user_01TEST");
    let listed = me.list().await.unwrap();
    assert_eq!(listed.len(), 2);
    let names: Vec<_> = listed
        .iter()
        .filter_map(|g| g.client_name.clone())
        .collect();
    assert!(names.contains(&"Mine".to_owned()) && names.contains(&"Also mine".to_owned()));
    assert!(me.revoke(&grant_id).await.unwrap());
    assert_eq!(
        call_mcp(&a, access(&mine)).await.status,
        401,
        "at once here"
    );
    assert_eq!(call_mcp(&a, access(&also_mine)).await.status, 200);
    clock.advance(CACHE_WINDOW);
    assert_eq!(
        call_mcp(&b, access(&mine)).await.status,
        401,
        "after the window there"
    );
    assert_eq!(me.revoke_all().await.unwrap().len(), 1);
    assert_eq!(call_mcp(&a, access(&also_mine)).await.status, 401);
    assert!(me.list().await.unwrap().is_empty());

    let audit = audit_kinds(&a, &grant_id).await;
    assert!(
        audit.contains(&(
            "grant_revoked".into(),
            "user".into(),
            json!({"reason": "user_request"})
        )),
        "{audit:?}"
    );
}

async fn admin_api_refuses_requests_without_the_secret(db: &TestDb) {
    let (_fake, a, _b, _clock) = two_replicas(db).await;
    let (_, tokens, _) = logged_in(&a, "Protected").await;
    let grant_id = grant_of(db, access(&tokens)).await;
    let routes = [
        ("GET", "/users/user_01TEST/grants".to_owned()),
        ("DELETE", "/users/user_01TEST/grants".to_owned()),
        ("DELETE", format!("/grants/{grant_id}")),
        ("DELETE", "/clients/anything/grants".to_owned()),
        ("GET", "/audit".to_owned()),
        ("GET", "/no/such/route".to_owned()),
    ];
    let wrong = format!("{ADMIN_TOKEN}x");
    for (method, path) in &routes {
        let missing = admin_call(&a, method, path, None).await;
        assert_eq!(missing.status, 401, "{method} {path}");
        let challenge = missing.challenge();
        assert!(challenge.starts_with("Bearer "), "{challenge}");
        assert!(
            !challenge.contains("error="),
            "no error without a token: {challenge}"
        );
        assert_eq!(missing.json()["error"], "invalid_token");
        for bad in [wrong.as_str(), access(&tokens)] {
            let refused = admin_call(&a, method, path, Some(bad)).await;
            assert_eq!(refused.status, 401, "{method} {path}");
            assert!(refused.challenge().contains("error=\"invalid_token\""));
            assert!(!refused.text().contains(bad), "the token is not echoed");
        }
    }
    // Nothing was revoked by the refused requests.
    assert_eq!(call_mcp(&a, access(&tokens)).await.status, 200);
    // With the secret, an unknown route is a JSON 404.
    let unknown = admin_call(&a, "GET", "/no/such/route", Some(ADMIN_TOKEN)).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"], "not_found");
    let bad_query = admin_call(&a, "GET", "/audit?limit=0", Some(ADMIN_TOKEN)).await;
    assert_eq!(bad_query.status, 400);
    assert_eq!(bad_query.json()["error"], "invalid_request");
}

async fn admin_api_lists_and_revokes_per_grant_user_and_client(db: &TestDb) {
    let (_fake, a, b, clock) = two_replicas(db).await;
    let (first, first_tokens, _) = logged_in(&a, "First app").await;
    let (_, second_tokens, _) = logged_in(&a, "Second app").await;
    // Another user's grant of the first client, written directly (the emulator logs in one
    // user; revoking reads no upstream token).
    insert_grant(db, "grant_other", "user_02OTHER", &first.client_id).await;
    for t in [&first_tokens, &second_tokens] {
        assert_eq!(call_mcp(&b, access(t)).await.status, 200);
    }
    let other = admin_ok(&b, "GET", "/users/user_02OTHER/grants").await;
    assert_eq!(other["grants"][0]["grant_id"], "grant_other");
    assert_eq!(other["grants"][0]["last_used_at"], Value::Null);

    let listed = admin_ok(&b, "GET", "/users/user_01TEST/grants").await;
    let grants = listed["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 2);
    let first_summary = grants
        .iter()
        .find(|g| g["client_id"] == json!(first.client_id))
        .expect("first client listed");
    assert_eq!(first_summary["client_name"], "First app");
    assert_eq!(first_summary["client_host"], "127.0.0.1");
    assert!(first_summary["scopes"].is_array());
    assert!(first_summary["created_at"].as_i64().unwrap() <= clock.now());
    assert!(
        first_summary["last_used_at"].as_i64().is_some(),
        "{first_summary}"
    );
    assert!(first_summary["expires_at"].as_i64().unwrap() > clock.now());
    let text = listed.to_string();
    for t in [&first_tokens, &second_tokens] {
        assert!(!text.contains(access(t)) && !text.contains(refresh(t)));
    }

    // All grants of the first client: both users' grants, on the replica asked at once.
    let revoked = admin_ok(
        &a,
        "DELETE",
        &format!("/clients/{}/grants", first.client_id),
    )
    .await;
    assert_eq!(revoked["revoked"].as_array().unwrap().len(), 2);
    assert_eq!(call_mcp(&a, access(&first_tokens)).await.status, 401);
    assert_eq!(
        admin_ok(&a, "GET", "/users/user_02OTHER/grants").await,
        json!({"grants": []})
    );
    assert_eq!(call_mcp(&a, access(&second_tokens)).await.status, 200);
    let listed = admin_ok(&a, "GET", "/users/user_01TEST/grants").await;
    assert_eq!(listed["grants"].as_array().unwrap().len(), 1);

    // All grants of the user.
    let revoked = admin_ok(&a, "DELETE", "/users/user_01TEST/grants").await;
    assert_eq!(
        revoked["revoked"],
        json!([grant_of(db, access(&second_tokens)).await])
    );
    assert_eq!(call_mcp(&a, access(&second_tokens)).await.status, 401);
    clock.advance(CACHE_WINDOW);
    for t in [&first_tokens, &second_tokens] {
        assert_eq!(call_mcp(&b, access(t)).await.status, 401);
    }
    let none = admin_ok(&a, "DELETE", "/users/user_01TEST/grants").await;
    assert_eq!(none, json!({"revoked": []}));
    let listed = admin_ok(&a, "GET", "/users/user_01TEST/grants").await;
    assert_eq!(listed, json!({"grants": []}));
}

async fn admin_api_decodes_url_client_ids_and_subjects(db: &TestDb) {
    let (_fake, a, _b, _clock) = two_replicas(db).await;
    // A metadata-document client and a grant of a subject with reserved characters, written
    // directly (the revocation reads neither the upstream tokens nor the document).
    let client_id = "https://apps.example.com/mcp/client.json";
    insert_client(db, &client_row(client_id)).await;
    let subject = "user/with%odd+chars";
    insert_grant(db, "grant_url", subject, client_id).await;

    let encoded_subject = "user%2Fwith%25odd%2Bchars";
    let listed = admin_ok(&a, "GET", &format!("/users/{encoded_subject}/grants")).await;
    let grants = listed["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 1, "{listed}");
    assert_eq!(grants[0]["client_id"], client_id);
    assert_eq!(
        grants[0]["client_host"], "apps.example.com",
        "the publisher"
    );

    let encoded_client = "https%3A%2F%2Fapps.example.com%2Fmcp%2Fclient.json";
    let revoked = admin_ok(&a, "DELETE", &format!("/clients/{encoded_client}/grants")).await;
    assert_eq!(revoked, json!({"revoked": ["grant_url"]}));
    let audit = admin_ok(
        &a,
        "GET",
        &format!("/audit?client_id={encoded_client}&subject={encoded_subject}"),
    )
    .await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["kind"], "grant_revoked");
    assert_eq!(entries[0]["actor"], "admin");
    assert_eq!(entries[0]["subject"], subject);
}

async fn every_revocation_path_is_audited_without_secrets(db: &TestDb) {
    let (_fake, a, b, clock) = two_replicas(db).await;
    let mut secrets: Vec<String> = Vec::new();

    // Login and refresh: grant_created, grant_refreshed; the client's /revoke ends it.
    let (client, tokens, code) = logged_in(&a, "Audited").await;
    let grant_id = grant_of(db, access(&tokens)).await;
    clock.advance(Duration::from_secs(1));
    let refreshed = token_request(
        &b,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh(&tokens)),
            ("client_id", &client.client_id),
        ],
    )
    .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    let refreshed = refreshed.json();
    clock.advance(Duration::from_secs(1));
    let revoke = a
        .client()
        .post_form(
            &a.url("/revoke"),
            &[
                ("token", refresh(&refreshed)),
                ("client_id", &client.client_id),
            ],
        )
        .await
        .unwrap();
    assert_eq!(revoke.status, 200);
    assert_eq!(call_mcp(&a, access(&refreshed)).await.status, 401);
    assert_eq!(
        audit_kinds(&a, &grant_id).await,
        [
            ("grant_created".into(), "user".into(), json!({"scopes": []})),
            (
                "grant_refreshed".into(),
                "client".into(),
                json!({"scopes": []})
            ),
            (
                "grant_revoked".into(),
                "client".into(),
                json!({"reason": "client_request"})
            ),
        ]
    );
    secrets.extend([code, access(&tokens).into(), refresh(&tokens).into()]);
    secrets.extend([access(&refreshed).into(), refresh(&refreshed).into()]);

    // A replayed code: replay_detected and grant_revoked by the system.
    let browser = Browser::default();
    let second = register(&a, &browser).await;
    let (verifier, challenge) = pkce();
    let code = login(&a, &browser, &second, &challenge).await;
    let tokens = redeem(&a, &second, &code, &verifier).await;
    let replayed_grant = grant_of(db, access(&tokens)).await;
    let replay = token_request(
        &b,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &verifier),
            ("client_id", &second.client_id),
            ("redirect_uri", &second.redirect_uri),
        ],
    )
    .await;
    assert_eq!(replay.status, 400);
    assert_eq!(call_mcp(&b, access(&tokens)).await.status, 401);
    let mut audit = audit_kinds(&a, &replayed_grant).await;
    audit.sort_by(|x, y| x.0.cmp(&y.0));
    let reason = json!({"reason": "authorization_code_replayed"});
    assert_eq!(
        audit.iter().map(|(k, ..)| k.as_str()).collect::<Vec<_>>(),
        ["grant_created", "grant_revoked", "replay_detected"]
    );
    assert_eq!(
        audit[1],
        ("grant_revoked".into(), "system".into(), reason.clone())
    );
    assert_eq!(
        audit[2],
        ("replay_detected".into(), "system".into(), reason)
    );
    secrets.extend([
        code,
        verifier,
        access(&tokens).into(),
        refresh(&tokens).into(),
    ]);

    // A refresh token replayed after its grace: the same pair of entries.
    let (client, tokens, _) = logged_in(&b, "Replayed refresh").await;
    let rt_grant = grant_of(db, access(&tokens)).await;
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh(&tokens)),
        ("client_id", client.client_id.as_str()),
    ];
    assert_eq!(token_request(&a, &form).await.status, 200);
    clock.advance(GRACE + Duration::from_secs(1));
    assert_eq!(token_request(&a, &form).await.status, 400);
    let mut audit = audit_kinds(&b, &rt_grant).await;
    audit.retain(|(kind, ..)| kind == "replay_detected" || kind == "grant_revoked");
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(audit.iter().all(|(_, actor, detail)| actor == "system"
        && *detail == json!({"reason": "refresh_token_replayed"})));
    secrets.extend([access(&tokens).into(), refresh(&tokens).into()]);

    // No token, code, verifier or digest of one anywhere in the audit log.
    let all = admin_ok(&a, "GET", "/audit?limit=1000").await.to_string();
    for secret in &secrets {
        assert!(!all.contains(secret.as_str()), "a secret in the audit log");
        assert!(
            !all.contains(&token_hash(secret)),
            "a digest in the audit log"
        );
    }
    assert!(!all.contains(crate::proxy_app::CONNECT_SECRET));
    assert!(!all.contains(ADMIN_TOKEN));

    // Retention: after a day every entry is hidden, and the sweeper deletes them.
    clock.advance(RETENTION);
    assert_eq!(admin_ok(&a, "GET", "/audit").await, json!({"entries": []}));
    let report = a.provider.store().purge_expired(100).await.unwrap();
    assert!(report.audit >= 10, "{report:?}");
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mcp_auth_audit")
        .fetch_one(db.sql().await)
        .await
        .unwrap();
    assert_eq!(left, 0);
}
