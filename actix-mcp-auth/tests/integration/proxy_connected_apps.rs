//! Proxy mode, the "connected apps" page over real HTTP: its AuthKit sign-in through the shared
//! callback (login and session cookies), the list of the signed-in user's live grants, revoking
//! one (CSRF token, only the user's own grant, refused at once on this replica, audited as the
//! user), signing out, tampered and expired cookies, a custom path, `__Host-` cookies on https,
//! and odd input.

use std::{sync::Arc, time::Duration};

use actix_mcp_auth::{
    Clock, WorkOsProvider,
    store::{
        Store, StoreOptions,
        audit::{AuditActor, AuditKind, AuditQuery},
    },
};
use actix_mcp_auth_testing::{Endpoint, FakeAuthKit, OAuthTestClient, TestResponse, query_params};
use actix_web::{cookie::Cookie, web};
use serde_json::json;

use crate::{
    app::Reply,
    proxy_app::{
        Browser, CONNECT_CLIENT_ID, Mount, ProxyApp, builder, call_mcp, hidden_field, login, pkce,
        redeem, register_with,
    },
    proxy_tokens::grant_of,
    store_support::TestDb,
};

crate::store_support::http_tests!(
    signing_in_goes_through_authkit_and_back_to_the_page,
    the_page_lists_only_the_signed_in_users_live_grants,
    a_page_callback_needs_this_browsers_login_cookie,
    revoking_needs_the_session_and_its_csrf_token,
    revoking_another_users_grant_ends_nothing_and_reveals_nothing,
    a_revoke_ends_the_grant_at_once_and_is_audited_as_the_user,
    signing_out_needs_the_csrf_token_and_ends_the_session,
    a_tampered_session_cookie_is_signed_out,
    an_expired_session_or_sign_in_is_signed_out,
    a_refused_sign_in_ends_the_attempt,
    a_custom_path_is_where_the_sign_in_returns,
    on_https_the_cookies_are_host_prefixed_and_secure,
    odd_form_bodies_get_the_pages_error_page_and_revoke_nothing,
    refusals_link_back_to_the_page,
    a_backslashed_path_stays_on_our_origin,
    the_page_cannot_take_a_route_of_the_provider,
);

const SESSION: &str = "mcp_auth_apps";
const LOGIN: &str = "mcp_auth_apps_login";
const PAGE: &str = "/connected-apps";
/// The user FakeAuthKit signs in by default.
const USER: &str = "user_01TEST";
const OTHER_USER: &str = "user_02OTHER";

/// How the page's test app is set up.
#[derive(Default)]
struct Setup {
    /// The public base URL's scheme is https (the server itself speaks http on loopback).
    https: bool,
    /// `ConnectedApps::path`, if not the default.
    path: Option<&'static str>,
}

/// A replica with the OAuth routes, the connected-apps page and an MCP endpoint. Its
/// `base_url` is where it listens (plain http), whatever the public scheme.
async fn spawn(fake: &FakeAuthKit, store: Store, setup: Setup) -> ProxyApp {
    let path = setup.path;
    let page = move |provider: &WorkOsProvider, cfg: &mut web::ServiceConfig| {
        cfg.service(match path {
            Some(path) => provider.connected_apps().path(path),
            None => provider.connected_apps(),
        });
    };
    let mount = Mount {
        https: setup.https,
        extra: Some(Arc::new(page)),
        ..Mount::default()
    };
    ProxyApp::spawn_mounted(fake, store, mount, |builder| builder).await
}

async fn start(db: &TestDb) -> (FakeAuthKit, ProxyApp) {
    let fake = FakeAuthKit::start();
    let app = spawn(&fake, db.store().await, Setup::default()).await;
    (fake, app)
}

/// An MCP client named `name` connected by the emulator's current user; its access token.
async fn connect(app: &ProxyApp, name: &str) -> String {
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
    tokens["access_token"].as_str().unwrap().to_owned()
}

/// A grant of `OTHER_USER` (the emulator signs them in for this one login); its access token.
async fn connect_other_user(fake: &FakeAuthKit, app: &ProxyApp, name: &str) -> String {
    fake.set_current_user(OTHER_USER);
    let token = connect(app, name).await;
    fake.set_current_user(USER);
    token
}

/// The cookies a response sets (or removes).
fn set_cookies(response: &TestResponse) -> Vec<Cookie<'static>> {
    response
        .headers
        .get_all("set-cookie")
        .map(|v| Cookie::parse(v.to_str().unwrap().to_owned()).expect("a cookie"))
        .collect()
}

fn set_cookie(response: &TestResponse, name: &str) -> Option<Cookie<'static>> {
    set_cookies(response).into_iter().find(|c| c.name() == name)
}

fn is_removal(cookie: &Cookie<'_>) -> bool {
    cookie.value().is_empty() && cookie.max_age().is_some_and(|a| a.whole_seconds() <= 0)
}

/// Asserts the attributes every cookie of the page carries.
fn assert_attributes(cookie: &Cookie<'_>, secure: bool) {
    assert_eq!(cookie.http_only(), Some(true), "{cookie}");
    assert_eq!(
        cookie.same_site(),
        Some(actix_web::cookie::SameSite::Lax),
        "{cookie}"
    );
    assert_eq!(cookie.path(), Some("/"), "{cookie}");
    assert_eq!(cookie.domain(), None, "{cookie}");
    assert_eq!(cookie.secure().unwrap_or(false), secure, "{cookie}");
}

/// GET `path` of `app` in `browser`: the redirect to AuthKit's authorize endpoint.
async fn open_signed_out(app: &ProxyApp, browser: &OAuthTestClient, path: &str) -> TestResponse {
    let response = browser.get(&app.url(path)).await.unwrap();
    assert_eq!(response.status, 302, "{}", response.text());
    response
}

/// From the redirect to AuthKit: the callback URL AuthKit sends the browser back to, as a
/// local (http) URL.
async fn authkit_answer(
    app: &ProxyApp,
    browser: &OAuthTestClient,
    to_authkit: &TestResponse,
) -> String {
    let callback = browser
        .follow(&to_authkit.location().unwrap())
        .await
        .unwrap();
    let public = url::Url::parse(app.provider.issuer()).unwrap();
    let local = url::Url::parse(&app.base_url).unwrap();
    callback.replacen(
        &public.origin().ascii_serialization(),
        &local.origin().ascii_serialization(),
        1,
    )
}

/// Signs `browser` in to the page at `path`; the callback's answer.
async fn sign_in_at(app: &ProxyApp, browser: &OAuthTestClient, path: &str) -> TestResponse {
    let to_authkit = open_signed_out(app, browser, path).await;
    let callback = authkit_answer(app, browser, &to_authkit).await;
    let landed = browser.get(&callback).await.unwrap();
    assert_eq!(landed.status, 303, "{}", landed.text());
    landed
}

/// A browser signed in to the page at its default path.
async fn signed_in(app: &ProxyApp) -> OAuthTestClient {
    let browser = app.client();
    sign_in_at(app, &browser, PAGE).await;
    assert!(browser.cookie(SESSION).is_some());
    browser
}

/// The signed-in page (200).
async fn page(app: &ProxyApp, browser: &OAuthTestClient) -> String {
    let response = browser.get(&app.url(PAGE)).await.unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    response.text()
}

/// The grant ids the page lists.
fn listed_grants(html: &str) -> Vec<String> {
    html.split("data-grant=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

/// A request with exactly the given `Cookie` header (none if `None`), outside any jar.
async fn raw(
    app: &ProxyApp,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
) -> Reply {
    let client = awc::Client::builder().disable_redirects().finish();
    let url = app.url(path);
    let mut request = match method {
        "GET" => client.get(url),
        _ => client.post(url),
    };
    if let Some(cookie) = cookie {
        request = request.insert_header(("Cookie", cookie.to_owned()));
    }
    let response = if method == "GET" {
        request.send().await
    } else {
        request.send_form(&form).await
    };
    Reply::read(response.expect("request")).await
}

/// `POST {PAGE}/revoke` from `browser`.
async fn revoke(app: &ProxyApp, browser: &OAuthTestClient, form: &[(&str, &str)]) -> TestResponse {
    browser
        .post_form(&app.url(&format!("{PAGE}/revoke")), form)
        .await
        .unwrap()
}

async fn signing_in_goes_through_authkit_and_back_to_the_page(db: &TestDb) {
    let (fake, app) = start(db).await;
    let browser = app.client();
    let to_authkit = open_signed_out(&app, &browser, PAGE).await;
    assert_eq!(to_authkit.header("cache-control"), Some("no-store"));
    let location = to_authkit.location().unwrap();
    assert!(
        location.starts_with(&format!("{}/oauth2/authorize?", fake.issuer())),
        "{location}"
    );
    let params = query_params(&location);
    assert_eq!(params["client_id"], CONNECT_CLIENT_ID);
    assert_eq!(
        params["redirect_uri"],
        format!("{}/auth/callback", app.base_url)
    );
    assert_eq!(params["response_type"], "code");
    assert!(params["state"].starts_with("apps."), "{params:?}");
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["code_challenge"].len(), 43, "{params:?}");
    assert!(!params["nonce"].is_empty());
    let login_cookie = set_cookie(&to_authkit, LOGIN).expect("the login cookie");
    assert_attributes(&login_cookie, false);
    assert_eq!(
        login_cookie.max_age().map(|a| a.whole_seconds()),
        Some(15 * 60)
    );
    for secret in [
        &params["state"],
        &params["code_challenge"],
        &params["nonce"],
    ] {
        assert!(!login_cookie.value().contains(secret.as_str()), "sealed");
    }
    assert!(set_cookie(&to_authkit, SESSION).is_none());

    let callback = authkit_answer(&app, &browser, &to_authkit).await;
    let landed = browser.get(&callback).await.unwrap();
    assert_eq!(landed.status, 303, "{}", landed.text());
    assert_eq!(landed.header("location"), Some(PAGE));
    assert_eq!(landed.header("cache-control"), Some("no-store"));
    let session = set_cookie(&landed, SESSION).expect("the session cookie");
    assert_attributes(&session, false);
    assert_eq!(session.max_age().map(|a| a.whole_seconds()), Some(3600));
    assert!(!session.value().contains(USER), "the subject is sealed");
    let cleared = set_cookie(&landed, LOGIN).expect("the login cookie is removed");
    assert!(is_removal(&cleared), "{cleared}");
    assert_attributes(&cleared, false);
    assert_eq!(browser.cookie_names(), [SESSION]);
    // Our code exchange used the verifier of the challenge we sent.
    let exchanged = fake.last_token_params().expect("a code exchange");
    let verifier = &exchanged["code_verifier"];
    assert_eq!(
        actix_mcp_auth_testing::Pkce::from_verifier(verifier.clone()).challenge,
        params["code_challenge"]
    );

    let shown = browser.get(&app.url(PAGE)).await.unwrap();
    assert_eq!(shown.status, 200);
    assert_eq!(shown.header("cache-control"), Some("no-store"));
    let csp = shown.header("content-security-policy").unwrap();
    assert!(csp.contains("form-action 'self';"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        !csp.contains("script-src") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(shown.header("x-frame-options"), Some("DENY"));
    let html = shown.text();
    assert!(html.contains("user_01TEST@example.com"), "who: {html}");
    assert!(html.contains("id=\"no-apps\""), "nothing connected yet");
}

async fn the_page_lists_only_the_signed_in_users_live_grants(db: &TestDb) {
    let (fake, app) = start(db).await;
    let plain = connect(&app, "Claude Desktop").await;
    let marked_up = connect(&app, "Cursor <script>alert(1)</script> \"&'").await;
    let gone = connect(&app, "Revoked before").await;
    let others = connect_other_user(&fake, &app, "Someone else's app").await;
    let gone_grant = grant_of(db, &gone).await;
    assert!(
        app.provider
            .grants()
            .for_user(USER)
            .revoke(&gone_grant)
            .await
            .unwrap()
    );

    let browser = signed_in(&app).await;
    let html = page(&app, &browser).await;
    let mut listed = listed_grants(&html);
    listed.sort();
    let mut mine = vec![grant_of(db, &plain).await, grant_of(db, &marked_up).await];
    mine.sort();
    assert_eq!(listed, mine, "exactly the user's live grants");
    assert!(!html.contains(&grant_of(db, &others).await));
    assert!(!html.contains("Someone else"), "{html}");
    assert!(!html.contains("Revoked before"), "{html}");
    assert!(html.contains("Claude Desktop"));
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("Cursor &lt;script&gt;alert(1)&lt;/script&gt; &quot;&amp;&#x27;"),
        "{html}"
    );
    // One revoke form per app, and the sign-out form, each with the session's token.
    let csrf = hidden_field(&html, "csrf_token");
    assert_eq!(
        html.matches(&format!("name=\"csrf_token\" value=\"{csrf}\""))
            .count(),
        3
    );
    assert!(html.contains(&format!("action=\"{PAGE}/revoke\"")));
    assert!(html.contains(&format!("action=\"{PAGE}/sign-out\"")));
    // No token of any grant on the page.
    for token in [&plain, &marked_up, &others] {
        assert!(!html.contains(token.as_str()));
    }

    // The other user sees only theirs.
    fake.set_current_user(OTHER_USER);
    let theirs = signed_in(&app).await;
    let html = page(&app, &theirs).await;
    assert_eq!(listed_grants(&html), [grant_of(db, &others).await]);
    assert!(html.contains(OTHER_USER));
}

async fn a_page_callback_needs_this_browsers_login_cookie(db: &TestDb) {
    let (fake, app) = start(db).await;
    let mine = app.client();
    let theirs = app.client();
    let my_start = open_signed_out(&app, &mine, PAGE).await;
    let their_start = open_signed_out(&app, &theirs, PAGE).await;
    let their_callback = authkit_answer(&app, &theirs, &their_start).await;
    let exchanges = fake.calls(Endpoint::Token);

    // Their callback in my browser (my login cookie, another attempt) and in a browser
    // without any cookie.
    let fresh = app.client();
    for browser in [&mine, &fresh] {
        let refused = browser.get(&their_callback).await.unwrap();
        assert_eq!(refused.status, 400, "{}", refused.text());
        assert!(
            refused
                .header("content-type")
                .unwrap()
                .starts_with("text/html"),
            "an error page"
        );
        assert_eq!(refused.header("cache-control"), Some("no-store"));
        assert!(refused.header("location").is_none());
        assert!(set_cookie(&refused, SESSION).is_none());
        assert!(refused.text().contains("started in another browser"));
        assert!(browser.cookie(SESSION).is_none());
    }
    assert_eq!(
        fake.calls(Endpoint::Token),
        exchanges,
        "no code was redeemed"
    );
    // A made-up page state with my cookie is refused too.
    let mut forged = query_params(&their_callback);
    forged.insert("state".into(), "apps.made-up".into());
    let forged_url = format!(
        "{}/auth/callback?{}",
        app.base_url,
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&forged)
            .finish()
    );
    assert_eq!(mine.get(&forged_url).await.unwrap().status, 400);
    assert!(mine.cookie(SESSION).is_none());

    // The browser that started it completes it (its code was left alone); mine still can.
    let landed = theirs.get(&their_callback).await.unwrap();
    assert_eq!(landed.status, 303, "{}", landed.text());
    assert!(theirs.cookie(SESSION).is_some());
    let my_callback = authkit_answer(&app, &mine, &my_start).await;
    assert_eq!(mine.get(&my_callback).await.unwrap().status, 303);
    page(&app, &mine).await;
}

async fn revoking_needs_the_session_and_its_csrf_token(db: &TestDb) {
    let (_fake, app) = start(db).await;
    let token = connect(&app, "Kept").await;
    let grant = grant_of(db, &token).await;
    let browser = signed_in(&app).await;
    let html = page(&app, &browser).await;
    let csrf = hidden_field(&html, "csrf_token");
    // Another session's token does not do either.
    let other_browser = signed_in(&app).await;
    let other_csrf = hidden_field(&page(&app, &other_browser).await, "csrf_token");
    assert_ne!(csrf, other_csrf);

    let wrong = format!("{csrf}x");
    let forms: [&[(&str, &str)]; 4] = [
        &[("grant_id", &grant)],
        &[("grant_id", &grant), ("csrf_token", "")],
        &[("grant_id", &grant), ("csrf_token", &wrong)],
        &[("grant_id", &grant), ("csrf_token", &other_csrf)],
    ];
    for form in forms {
        let refused = revoke(&app, &browser, form).await;
        assert_eq!(refused.status, 403, "{form:?}: {}", refused.text());
        assert_eq!(refused.header("cache-control"), Some("no-store"));
        assert!(refused.text().contains("Open the page again"));
    }
    // Without the session cookie (a cross-site post, or signed out): 401, with a good token.
    let signed_out = raw(
        &app,
        "POST",
        &format!("{PAGE}/revoke"),
        None,
        &[("grant_id", &grant), ("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(signed_out.status, 401, "{}", signed_out.text());
    assert_eq!(
        signed_out.header("cache-control").as_deref(),
        Some("no-store")
    );
    // Only POST revokes.
    let get = browser
        .get(&app.url(&format!("{PAGE}/revoke?grant_id={grant}&csrf_token={csrf}")))
        .await
        .unwrap();
    assert_ne!(get.status / 100, 2);
    assert_ne!(get.status / 100, 3);

    assert_eq!(call_mcp(&app, &token).await.status, 200, "nothing revoked");
    assert_eq!(
        listed_grants(&page(&app, &browser).await),
        std::slice::from_ref(&grant)
    );
    let audit = app
        .provider
        .grants()
        .audit_entries(&AuditQuery::all().grant(&grant))
        .await
        .unwrap();
    assert!(audit.iter().all(|e| e.kind != AuditKind::GrantRevoked));

    // A form without a grant changes nothing either.
    let empty = revoke(&app, &browser, &[("csrf_token", &csrf)]).await;
    assert_eq!(empty.status, 400);
    assert_eq!(call_mcp(&app, &token).await.status, 200);
}

async fn revoking_another_users_grant_ends_nothing_and_reveals_nothing(db: &TestDb) {
    let (fake, app) = start(db).await;
    let others = connect_other_user(&fake, &app, "Not yours").await;
    let their_grant = grant_of(db, &others).await;
    let browser = signed_in(&app).await;
    let csrf = hidden_field(&page(&app, &browser).await, "csrf_token");

    let theirs = revoke(
        &app,
        &browser,
        &[("grant_id", &their_grant), ("csrf_token", &csrf)],
    )
    .await;
    let unknown = revoke(
        &app,
        &browser,
        &[("grant_id", "no_such_grant"), ("csrf_token", &csrf)],
    )
    .await;
    for answer in [&theirs, &unknown] {
        assert_eq!(answer.status, 303, "{}", answer.text());
        assert_eq!(
            answer.header("location"),
            Some(format!("{PAGE}?revoked=1").as_str())
        );
        assert!(answer.body.is_empty());
    }
    assert_eq!(call_mcp(&app, &others).await.status, 200, "still live");
    let listed = app
        .provider
        .grants()
        .for_user(OTHER_USER)
        .list()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].grant_id, their_grant);
}

async fn a_revoke_ends_the_grant_at_once_and_is_audited_as_the_user(db: &TestDb) {
    let (_fake, app) = start(db).await;
    let ended = connect(&app, "To revoke").await;
    let kept = connect(&app, "To keep").await;
    let ended_grant = grant_of(db, &ended).await;
    // This replica verified (and cached) both tokens.
    assert_eq!(call_mcp(&app, &ended).await.status, 200);
    assert_eq!(call_mcp(&app, &kept).await.status, 200);
    let browser = signed_in(&app).await;
    let csrf = hidden_field(&page(&app, &browser).await, "csrf_token");

    let answer = revoke(
        &app,
        &browser,
        &[("grant_id", &ended_grant), ("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(answer.status, 303, "{}", answer.text());
    assert_eq!(
        answer.header("location"),
        Some(format!("{PAGE}?revoked=1").as_str())
    );
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    // Refused at once here, though it was cached.
    let refused = call_mcp(&app, &ended).await;
    assert_eq!(refused.status, 401);
    assert!(refused.challenge().contains("invalid_token"));
    assert_eq!(call_mcp(&app, &kept).await.status, 200);

    let html = browser
        .get(&app.url(&format!("{PAGE}?revoked=1")))
        .await
        .unwrap()
        .text();
    assert!(html.contains("Access revoked."), "{html}");
    assert_eq!(listed_grants(&html), [grant_of(db, &kept).await]);
    assert!(!html.contains("To revoke"));

    let audit = app
        .provider
        .grants()
        .audit_entries(&AuditQuery::all().grant(&ended_grant))
        .await
        .unwrap();
    let revoked: Vec<_> = audit
        .iter()
        .filter(|e| e.kind == AuditKind::GrantRevoked)
        .collect();
    assert_eq!(revoked.len(), 1, "{audit:?}");
    assert_eq!(revoked[0].actor, AuditActor::User);
    assert_eq!(revoked[0].subject.as_deref(), Some(USER));
    assert_eq!(revoked[0].detail, Some(json!({"reason": "user_request"})));
    let text = format!("{audit:?}");
    assert!(!text.contains(&csrf) && !text.contains(&ended));

    // Revoking it again changes nothing and looks the same.
    let again = revoke(
        &app,
        &browser,
        &[("grant_id", &ended_grant), ("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(again.status, 303);
    let audit = app
        .provider
        .grants()
        .audit_entries(&AuditQuery::all().grant(&ended_grant))
        .await
        .unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.kind == AuditKind::GrantRevoked)
            .count(),
        1
    );
}

async fn signing_out_needs_the_csrf_token_and_ends_the_session(db: &TestDb) {
    let (fake, app) = start(db).await;
    let token = connect(&app, "Stays connected").await;
    let browser = signed_in(&app).await;
    let csrf = hidden_field(&page(&app, &browser).await, "csrf_token");
    let sign_out = app.url(&format!("{PAGE}/sign-out"));

    for form in [vec![], vec![("csrf_token", "guess")]] {
        let refused = browser.post_form(&sign_out, &form).await.unwrap();
        assert_eq!(refused.status, 403, "{}", refused.text());
        assert!(set_cookie(&refused, SESSION).is_none());
    }
    page(&app, &browser).await; // still signed in

    let done = browser
        .post_form(&sign_out, &[("csrf_token", &csrf)])
        .await
        .unwrap();
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(done.header("cache-control"), Some("no-store"));
    assert!(done.text().contains("Signed out"));
    let removed = set_cookie(&done, SESSION).expect("the session cookie is removed");
    assert!(is_removal(&removed), "{removed}");
    assert_attributes(&removed, false);
    assert!(browser.cookie(SESSION).is_none());

    // The page asks AuthKit again; the token form fails without a session.
    let exchanges = fake.calls(Endpoint::Token);
    open_signed_out(&app, &browser, PAGE).await;
    assert_eq!(
        browser
            .post_form(&sign_out, &[("csrf_token", &csrf)])
            .await
            .unwrap()
            .status,
        401
    );
    assert_eq!(fake.calls(Endpoint::Token), exchanges);
    assert_eq!(call_mcp(&app, &token).await.status, 200, "no grant ended");
}

async fn a_tampered_session_cookie_is_signed_out(db: &TestDb) {
    let (_fake, app) = start(db).await;
    let token = connect(&app, "Target").await;
    let grant = grant_of(db, &token).await;
    let browser = signed_in(&app).await;
    let csrf = hidden_field(&page(&app, &browser).await, "csrf_token");
    let value = browser.cookie(SESSION).unwrap();
    let good = format!("{SESSION}={value}");
    assert_eq!(raw(&app, "GET", PAGE, Some(&good), &[]).await.status, 200);

    let (key_id, sealed) = value.rsplit_once('.').unwrap();
    let middle = sealed.len() / 2;
    let flipped = if &sealed[middle..=middle] == "A" {
        "B"
    } else {
        "A"
    };
    let tampered = [
        format!("{}{flipped}{}", &sealed[..middle], &sealed[middle + 1..]),
        sealed[..sealed.len() - 4].to_owned(),
        format!("{sealed}AAAA"),
    ];
    let mut candidates: Vec<String> = tampered.iter().map(|s| format!("{key_id}.{s}")).collect();
    candidates.push(format!("other-key.{sealed}"));
    candidates.push(sealed.to_owned());
    candidates.push(String::new());
    // The login cookie's value is no session either.
    let login_value = set_cookie(&open_signed_out(&app, &app.client(), PAGE).await, LOGIN)
        .unwrap()
        .value()
        .to_owned();
    candidates.push(login_value);
    for candidate in &candidates {
        let cookie = format!("{SESSION}={candidate}");
        let shown = raw(&app, "GET", PAGE, Some(&cookie), &[]).await;
        assert_eq!(shown.status, 302, "{candidate}: {}", shown.text());
        assert!(
            shown
                .header("location")
                .unwrap()
                .contains("/oauth2/authorize?")
        );
        let revoked = raw(
            &app,
            "POST",
            &format!("{PAGE}/revoke"),
            Some(&cookie),
            &[("grant_id", &grant), ("csrf_token", &csrf)],
        )
        .await;
        assert_eq!(revoked.status, 401, "{candidate}");
    }
    assert_eq!(call_mcp(&app, &token).await.status, 200, "nothing revoked");
}

async fn an_expired_session_or_sign_in_is_signed_out(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let clock = Clock::adjustable();
    let store = db
        .store_with_options(StoreOptions::default().clock(clock.clone()))
        .await;
    let app = spawn(&fake, store, Setup::default()).await;
    let token = connect(&app, "Outlives the session").await;
    let grant = grant_of(db, &token).await;
    let browser = signed_in(&app).await;
    let csrf = hidden_field(&page(&app, &browser).await, "csrf_token");

    clock.advance(Duration::from_secs(3600 - 5));
    page(&app, &browser).await;
    clock.advance(Duration::from_secs(5));
    open_signed_out(&app, &browser, PAGE).await;
    let late = revoke(
        &app,
        &browser,
        &[("grant_id", &grant), ("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(late.status, 401, "{}", late.text());
    let live = app.provider.grants().for_user(USER).list().await.unwrap();
    assert_eq!(live.len(), 1, "nothing revoked");
    assert_eq!(live[0].grant_id, grant);

    // A sign-in that took longer than 15 minutes is refused at the callback.
    let slow = app.client();
    let to_authkit = open_signed_out(&app, &slow, PAGE).await;
    let callback = authkit_answer(&app, &slow, &to_authkit).await;
    clock.advance(Duration::from_secs(15 * 60));
    let refused = slow.get(&callback).await.unwrap();
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(slow.cookie(SESSION).is_none());
}

async fn a_custom_path_is_where_the_sign_in_returns(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let setup = Setup {
        path: Some("account/apps/"),
        ..Setup::default()
    };
    let app = spawn(&fake, db.store().await, setup).await;
    let token = connect(&app, "Custom path").await;
    let grant = grant_of(db, &token).await;
    // Nothing at the default path.
    assert_eq!(app.client().get(&app.url(PAGE)).await.unwrap().status, 404);

    let browser = app.client();
    let landed = sign_in_at(&app, &browser, "/account/apps").await;
    assert_eq!(landed.header("location"), Some("/account/apps"));
    let html = browser.get(&app.url("/account/apps")).await.unwrap();
    assert_eq!(html.status, 200);
    let html = html.text();
    assert!(html.contains("action=\"/account/apps/revoke\""), "{html}");
    assert!(html.contains("action=\"/account/apps/sign-out\""), "{html}");
    let csrf = hidden_field(&html, "csrf_token");
    let answer = browser
        .post_form(
            &app.url("/account/apps/revoke"),
            &[("grant_id", &grant), ("csrf_token", &csrf)],
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 303);
    assert_eq!(answer.header("location"), Some("/account/apps?revoked=1"));
    assert_eq!(call_mcp(&app, &token).await.status, 401);
}

async fn on_https_the_cookies_are_host_prefixed_and_secure(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let setup = Setup {
        https: true,
        ..Setup::default()
    };
    let app = spawn(&fake, db.store().await, setup).await;
    let browser = app.client();
    let to_authkit = open_signed_out(&app, &browser, PAGE).await;
    let params = query_params(&to_authkit.location().unwrap());
    assert_eq!(
        params["redirect_uri"],
        format!("{}/auth/callback", app.provider.issuer())
    );
    assert!(params["redirect_uri"].starts_with("https://"));
    let login_cookie = set_cookie(&to_authkit, "__Host-mcp_auth_apps_login").expect("prefixed");
    assert_attributes(&login_cookie, true);
    assert!(set_cookie(&to_authkit, LOGIN).is_none());

    let callback = authkit_answer(&app, &browser, &to_authkit).await;
    let landed = browser.get(&callback).await.unwrap();
    assert_eq!(landed.status, 303, "{}", landed.text());
    let session = set_cookie(&landed, "__Host-mcp_auth_apps").expect("prefixed session");
    assert_attributes(&session, true);
    let cleared = set_cookie(&landed, "__Host-mcp_auth_apps_login").unwrap();
    assert!(is_removal(&cleared));
    assert_attributes(&cleared, true);
    // The unprefixed name is not a session on https (a sibling host could set it).
    let value = session.value().to_owned();
    let unprefixed = raw(&app, "GET", PAGE, Some(&format!("{SESSION}={value}")), &[]).await;
    assert_eq!(unprefixed.status, 302);
    let html = browser.get(&app.url(PAGE)).await.unwrap();
    assert_eq!(html.status, 200);
    let csrf = hidden_field(&html.text(), "csrf_token");
    let done = browser
        .post_form(
            &app.url(&format!("{PAGE}/sign-out")),
            &[("csrf_token", &csrf)],
        )
        .await
        .unwrap();
    let removed = set_cookie(&done, "__Host-mcp_auth_apps").unwrap();
    assert!(is_removal(&removed));
    assert_attributes(&removed, true);
}

async fn a_refused_sign_in_ends_the_attempt(db: &TestDb) {
    let (fake, app) = start(db).await;
    let browser = app.client();
    let to_authkit = open_signed_out(&app, &browser, PAGE).await;
    fake.set_deny_authorization(true);
    let callback = authkit_answer(&app, &browser, &to_authkit).await;
    fake.set_deny_authorization(false);
    assert_eq!(query_params(&callback)["error"], "access_denied");
    let refused = browser.get(&callback).await.unwrap();
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(set_cookie(&refused, SESSION).is_none());
    let cleared = set_cookie(&refused, LOGIN).expect("the spent attempt is forgotten");
    assert!(is_removal(&cleared), "{cleared}");
    assert!(
        browser.cookie_names().is_empty(),
        "{:?}",
        browser.cookie_names()
    );
    // Starting again works.
    sign_in_at(&app, &browser, PAGE).await;
    page(&app, &browser).await;
}

/// `POST path` with a raw body and exactly the given `Cookie` header.
async fn raw_body(
    app: &ProxyApp,
    path: &str,
    cookie: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Reply {
    let client = awc::Client::builder().disable_redirects().finish();
    let response = client
        .post(app.url(path))
        .insert_header(("Cookie", cookie.to_owned()))
        .insert_header(("Content-Type", content_type.to_owned()))
        .send_body(body)
        .await
        .expect("request");
    Reply::read(response).await
}

/// Asserts `reply` is one of the page's own error pages with `status`.
fn assert_page_error(reply: &Reply, status: u16, page: &str) {
    let text = reply.text();
    assert_eq!(reply.status, status, "{text}");
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{text}"
    );
    assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(
        reply.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert!(
        reply
            .header("content-security-policy")
            .is_some_and(|csp| csp.contains("default-src 'none'")),
        "CSP"
    );
    assert!(text.contains(&format!("href=\"{page}\"")), "{text}");
    assert!(!text.contains("Go back to the application"), "{text}");
}

async fn odd_form_bodies_get_the_pages_error_page_and_revoke_nothing(db: &TestDb) {
    let (_fake, app) = start(db).await;
    let token = connect(&app, "Survives odd forms").await;
    let grant = grant_of(db, &token).await;
    let browser = signed_in(&app).await;
    let csrf = hidden_field(&page(&app, &browser).await, "csrf_token");
    let cookie = format!("{SESSION}={}", browser.cookie(SESSION).unwrap());
    let revoke_path = format!("{PAGE}/revoke");
    let form = "application/x-www-form-urlencoded";
    let good = format!("grant_id={grant}&csrf_token={csrf}");

    // Too large (the limit is 4 KiB), with a good token.
    let huge = format!("{good}&pad={}", "x".repeat(64 * 1024));
    let answer = raw_body(&app, &revoke_path, &cookie, form, huge.into_bytes()).await;
    assert_page_error(&answer, 413, PAGE);
    assert!(answer.text().contains("too large"));
    // A field twice, the right token among them.
    let twice = format!("{good}&csrf_token={csrf}");
    let answer = raw_body(&app, &revoke_path, &cookie, form, twice.into_bytes()).await;
    assert_page_error(&answer, 400, PAGE);
    // Not a form.
    let json = serde_json::to_vec(&json!({"grant_id": grant, "csrf_token": csrf})).unwrap();
    let answer = raw_body(&app, &revoke_path, &cookie, "application/json", json).await;
    assert_page_error(&answer, 400, PAGE);
    // Bytes that are not UTF-8, raw and percent-encoded, in every field: no panic, a refusal.
    let mut bytes = b"grant_id=\xff\xfe%FF&csrf_token=".to_vec();
    bytes.extend_from_slice(csrf.as_bytes());
    bytes.extend_from_slice(b"\xc3");
    let answer = raw_body(&app, &revoke_path, &cookie, form, bytes).await;
    assert_page_error(&answer, 403, PAGE);
    let mut bytes = b"grant_id=%FF%C3\xff&csrf_token=".to_vec();
    bytes.extend_from_slice(csrf.as_bytes());
    let answer = raw_body(&app, &revoke_path, &cookie, form, bytes).await;
    assert_eq!(
        answer.status,
        303,
        "a grant id that is nobody's: {}",
        answer.text()
    );
    let sign_out = format!("{PAGE}/sign-out");
    let answer = raw_body(
        &app,
        &sign_out,
        &cookie,
        form,
        b"csrf_token=\xff%FF".to_vec(),
    )
    .await;
    assert_page_error(&answer, 403, PAGE);
    // None of the answers shows how the form was parsed.
    for body in [b"a=%zz&&=&csrf_token".to_vec(), vec![0xff; 100]] {
        let answer = raw_body(&app, &revoke_path, &cookie, form, body).await;
        assert!(
            answer.status >= 400 && answer.status < 500,
            "{}",
            answer.status
        );
        let text = answer.text().to_lowercase();
        for internal in [
            "urlencoded",
            "serde",
            "payload",
            "deserial",
            "invalid utf",
            "error:",
        ] {
            assert!(!text.contains(internal), "{internal}: {text}");
        }
    }

    assert_eq!(call_mcp(&app, &token).await.status, 200, "nothing revoked");
    assert_eq!(listed_grants(&page(&app, &browser).await), [grant]);
}

async fn refusals_link_back_to_the_page(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let setup = Setup {
        path: Some("/account/apps"),
        ..Setup::default()
    };
    let app = spawn(&fake, db.store().await, setup).await;
    let browser = app.client();
    sign_in_at(&app, &browser, "/account/apps").await;
    let revoke_url = app.url("/account/apps/revoke");
    let sign_out_url = app.url("/account/apps/sign-out");
    let forged = browser
        .post_form(&revoke_url, &[("grant_id", "g"), ("csrf_token", "forged")])
        .await
        .unwrap();
    assert_page_error(&Reply::from(forged), 403, "/account/apps");
    let forged = browser
        .post_form(&sign_out_url, &[("csrf_token", "forged")])
        .await
        .unwrap();
    assert_page_error(&Reply::from(forged), 403, "/account/apps");
    let signed_out = raw(
        &app,
        "POST",
        "/account/apps/revoke",
        None,
        &[("grant_id", "g")],
    )
    .await;
    assert_page_error(&signed_out, 401, "/account/apps");
    assert!(signed_out.text().contains("Your session ended"));
}

async fn a_backslashed_path_stays_on_our_origin(db: &TestDb) {
    // `/\host` is `//host` to a browser: the page's path keeps it a path of ours.
    let fake = FakeAuthKit::start();
    let backslashed = Setup {
        path: Some("\\\\evil.example\\apps//"),
        ..Setup::default()
    };
    let app = spawn(&fake, db.store().await, backslashed).await;
    let token = connect(&app, "Backslashed").await;
    let grant = grant_of(db, &token).await;
    let browser = app.client();
    let landed = sign_in_at(&app, &browser, "/evil.example/apps").await;
    assert_eq!(landed.header("location"), Some("/evil.example/apps"));
    let html = browser
        .get(&app.url("/evil.example/apps"))
        .await
        .unwrap()
        .text();
    assert!(
        html.contains("action=\"/evil.example/apps/revoke\""),
        "{html}"
    );
    assert!(!html.contains("action=\"//"), "{html}");
    assert!(!html.contains('\\'), "{html}");
    let csrf = hidden_field(&html, "csrf_token");
    let answer = browser
        .post_form(
            &app.url("/evil.example/apps/revoke"),
            &[("grant_id", &grant), ("csrf_token", &csrf)],
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 303, "{}", answer.text());
    assert_eq!(
        answer.header("location"),
        Some("/evil.example/apps?revoked=1")
    );
    assert_eq!(call_mcp(&app, &token).await.status, 401);
}

/// The page cannot take a route of the provider's (at the root, its `/revoke` would be the
/// OAuth revocation endpoint): configuring it there fails at once.
async fn the_page_cannot_take_a_route_of_the_provider(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let provider = builder(&fake, "http://127.0.0.1:9")
        .build(db.store().await)
        .expect("provider builds");
    for taken in [
        "/",
        "",
        "//",
        "\\",
        "/revoke",
        "token/",
        "/consent",
        "/authorize",
        "/register",
        "/auth/callback",
        "/.well-known",
        "/.well-known/x",
        "/mcp",
        "/mcp/apps",
    ] {
        let p = provider.clone();
        let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _ = p.connected_apps().path(taken);
        }));
        let message = refused.expect_err(taken);
        let message = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(
            message.contains("cannot be served at"),
            "{taken}: {message}"
        );
    }
    for fine in [
        "/apps",
        "/account/revoke",
        "/mcpx",
        "/auth",
        "/connected-apps",
    ] {
        let _ = provider.connected_apps().path(fine);
    }
}
