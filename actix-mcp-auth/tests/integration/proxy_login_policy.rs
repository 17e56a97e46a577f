//! Who may log in (proxy mode): the login policy at the callback, on SQLite and PostgreSQL.
//!
//! Every denial is checked the same way: the client gets `access_denied` by redirect with a
//! description naming the reason, its `state` and our `iss`; no grant, code or token exists
//! afterwards; one `login_denied` audit row names the user, the client and the reason code,
//! and holds no secret.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_mcp_auth::{
    Denial, WorkOsProviderBuilder,
    store::audit::{AuditActor, AuditKind, AuditQuery},
};
use actix_mcp_auth_testing::{
    AuthorizeOptions, FakeAuthKit, OAuthClientError, OAuthTestClient, RegisteredClient,
};
use serde_json::{Value, json};

use crate::{
    proxy_app::{Browser, ProxyApp, authorize_url, hidden_field, location_params, pkce, register},
    store_support::TestDb,
};

crate::store_support::http_tests!(
    only_allowed_email_domains_log_in,
    only_allowed_organizations_log_in,
    roles_any_of_and_permissions_all_of,
    the_login_hook_admits_denies_and_fails_closed,
    a_denied_login_forgets_the_remembered_consent,
);

const STATE: &str = "policy-state-42";

/// An app configured by `configure`, a scripted client and its registration.
async fn setup(
    db: &TestDb,
    configure: impl FnOnce(WorkOsProviderBuilder) -> WorkOsProviderBuilder,
) -> (FakeAuthKit, ProxyApp, OAuthTestClient, RegisteredClient) {
    let fake = FakeAuthKit::start();
    let app = ProxyApp::spawn(&fake, db.store().await, configure).await;
    let client = app.client();
    let registered = client
        .register(&OAuthTestClient::default_client_metadata())
        .await
        .expect("registration");
    (fake, app, client, registered)
}

/// Makes `sub` the user AuthKit signs in next, with `profile` (userinfo fields, plus the
/// `org_id`, `role`, `roles` and `permissions` AuthKit puts in its access token).
fn sign_in_as(fake: &FakeAuthKit, sub: &str, profile: Value) {
    fake.set_user(sub, profile);
    fake.set_current_user(sub);
}

/// A whole login of `registered`, redeemed: the user was admitted.
async fn assert_admitted(client: &OAuthTestClient, registered: &RegisteredClient) {
    let code = client
        .authorize_and_consent(registered, &options())
        .await
        .unwrap_or_else(|e| panic!("admitted: {e}"));
    let tokens = client.exchange_code(registered, &code).await.unwrap();
    assert!(tokens.access_token.starts_with("mcp_at_"));
}

fn options() -> AuthorizeOptions {
    AuthorizeOptions {
        state: Some(STATE.to_owned()),
        ..AuthorizeOptions::default()
    }
}

async fn count(db: &TestDb, sql: &'static str, subject: Option<&str>) -> i64 {
    let query = sqlx::query_scalar(sql);
    let query = match subject {
        Some(subject) => query.bind(subject.to_owned()),
        None => query,
    };
    query.fetch_one(db.sql().await).await.expect("count")
}

/// Codes and tokens in the database (of every user).
async fn codes_and_tokens(db: &TestDb) -> (i64, i64) {
    (
        count(db, "SELECT COUNT(*) FROM mcp_auth_codes", None).await,
        count(db, "SELECT COUNT(*) FROM mcp_auth_tokens", None).await,
    )
}

/// A login of `registered` as `sub` is refused with `reason` (the audit code) and a
/// description containing `words`, and leaves only its audit row behind.
async fn assert_denied(
    db: &TestDb,
    (fake, app, client, registered): (&FakeAuthKit, &ProxyApp, &OAuthTestClient, &RegisteredClient),
    sub: &str,
    reason: &str,
    words: &str,
) {
    let before = codes_and_tokens(db).await;
    let audited_before = audit_rows(app, sub).await.len();
    let error = client
        .authorize_and_consent(registered, &options())
        .await
        .expect_err("the login is refused");
    let OAuthClientError::Authorization {
        step,
        error,
        description,
        state,
        iss,
    } = error
    else {
        panic!("expected an error redirect, got {error}");
    };
    assert_eq!(step, "login", "sent back by the callback");
    assert_eq!(error, "access_denied");
    let description = description.expect("an error_description");
    assert!(description.contains(words), "{description}");
    assert!(
        description
            .chars()
            .all(|c| matches!(c, ' ' | '!' | '#'..='[' | ']'..='~')),
        "RFC 6749 characters only: {description}"
    );
    assert_eq!(state.as_deref(), Some(STATE));
    assert_eq!(iss.as_deref(), Some(app.provider.issuer()));

    let grants = "SELECT COUNT(*) FROM mcp_auth_grants WHERE subject = $1";
    assert_eq!(count(db, grants, Some(sub)).await, 0, "no grant");
    assert_eq!(codes_and_tokens(db).await, before, "no code, no token");

    let rows = audit_rows(app, sub).await;
    assert_eq!(rows.len(), audited_before + 1, "one audit row per denial");
    let row = &rows[0];
    assert_eq!(row.kind, AuditKind::LoginDenied);
    assert_eq!(row.actor, AuditActor::System);
    assert_eq!(
        row.client_id.as_deref(),
        Some(registered.client_id.as_str())
    );
    assert_eq!(row.grant_id, None);
    assert_eq!(row.detail.as_ref().unwrap()["reason"], reason);
    let written = format!("{row:?}");
    for secret in fake
        .issued_access_tokens()
        .iter()
        .chain(&fake.issued_refresh_tokens())
    {
        assert!(!written.contains(secret.as_str()), "no AuthKit token");
    }
    for prefix in ["mcp_at_", "mcp_rt_", "mcp_cs_", "mcp_ac_", "eyJ"] {
        assert!(!written.contains(prefix), "no secret in {written}");
    }
}

async fn audit_rows(app: &ProxyApp, sub: &str) -> Vec<actix_mcp_auth::store::audit::AuditEntry> {
    app.provider
        .store()
        .audit_entries(&AuditQuery::all().subject(sub))
        .await
        .expect("audit entries")
}

async fn only_allowed_email_domains_log_in(db: &TestDb) {
    let (fake, app, client, registered) =
        setup(db, |b| b.allowed_email_domains(["Example.com"])).await;
    let case = (&fake, &app, &client, &registered);
    // The default user is user_01TEST@example.com.
    assert_admitted(&client, &registered).await;
    sign_in_as(&fake, "user_alice", json!({"email": "alice@example.org"}));
    assert_denied(
        db,
        case,
        "user_alice",
        "email_domain_not_allowed",
        "Your account (alice@example.org) is not allowed to use this server: only example.com accounts may sign in.",
    )
    .await;
    let row = &audit_rows(&app, "user_alice").await[0];
    assert_eq!(row.detail.as_ref().unwrap()["email"], "alice@example.org");

    // Subdomains are other domains; an unverified address is refused; case does not matter.
    sign_in_as(&fake, "user_sub", json!({"email": "sub@eng.example.com"}));
    assert_denied(
        db,
        case,
        "user_sub",
        "email_domain_not_allowed",
        "eng.example.com",
    )
    .await;
    sign_in_as(
        &fake,
        "user_unverified",
        json!({"email": "new@example.com", "email_verified": false}),
    );
    assert_denied(
        db,
        case,
        "user_unverified",
        "email_unverified",
        "not verified",
    )
    .await;
    sign_in_as(&fake, "user_caps", json!({"email": "Caps@EXAMPLE.COM"}));
    assert_admitted(&client, &registered).await;
}

async fn only_allowed_organizations_log_in(db: &TestDb) {
    let (fake, app, client, registered) = setup(db, |b| {
        b.allowed_organizations(["org_01ACME", "org_01BETA"])
    })
    .await;
    let case = (&fake, &app, &client, &registered);
    sign_in_as(&fake, "user_acme", json!({"org_id": "org_01ACME"}));
    assert_admitted(&client, &registered).await;
    sign_in_as(&fake, "user_other", json!({"org_id": "org_01OTHER"}));
    assert_denied(
        db,
        case,
        "user_other",
        "organization_not_allowed",
        "Your organization (org_01OTHER) is not allowed",
    )
    .await;
    // A user who signs in without an organization.
    sign_in_as(&fake, "user_solo", json!({}));
    assert_denied(
        db,
        case,
        "user_solo",
        "organization_missing",
        "without an organization",
    )
    .await;
}

async fn roles_any_of_and_permissions_all_of(db: &TestDb) {
    let (fake, app, client, registered) = setup(db, |b| {
        b.required_roles(["admin", "editor"])
            .required_permissions(["docs:read", "docs:write"])
    })
    .await;
    let case = (&fake, &app, &client, &registered);
    sign_in_as(
        &fake,
        "user_editor",
        json!({"org_id": "org_1", "role": "member", "roles": ["member", "editor"],
               "permissions": ["docs:read", "docs:write", "billing:read"]}),
    );
    assert_admitted(&client, &registered).await;
    sign_in_as(
        &fake,
        "user_viewer",
        json!({"org_id": "org_1", "role": "viewer", "permissions": ["docs:read", "docs:write"]}),
    );
    assert_denied(
        db,
        case,
        "user_viewer",
        "role_not_allowed",
        "Your role (viewer) in this organization, and using this server needs one of these roles: admin, editor.",
    )
    .await;
    sign_in_as(
        &fake,
        "user_half",
        json!({"org_id": "org_1", "role": "admin", "permissions": ["docs:read"]}),
    );
    assert_denied(
        db,
        case,
        "user_half",
        "permission_missing",
        "lacks the permission docs:write",
    )
    .await;
}

async fn the_login_hook_admits_denies_and_fails_closed(db: &TestDb) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let (fake, app, client, registered) = setup(db, move |b| {
        b.allowed_email_domains(["example.com"])
            .login_hook_timeout(Duration::from_millis(300))
            .login_hook(move |user| {
                counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    match user.email.as_deref().unwrap_or_default() {
                        "slow@example.com" => std::future::pending().await,
                        "bug@example.com" => panic!("a bug in the application's hook"),
                        "down@example.com" => Err(Denial::failed("directory unreachable")),
                        "guest@example.com" => Err(Denial::new(
                            "not_invited",
                            "You have not been invited to this server yet.",
                        )),
                        _ => Ok(()),
                    }
                }
            })
    })
    .await;
    let case = (&fake, &app, &client, &registered);
    assert_admitted(&client, &registered).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    sign_in_as(&fake, "user_guest", json!({"email": "guest@example.com"}));
    assert_denied(
        db,
        case,
        "user_guest",
        "not_invited",
        "You have not been invited to this server yet.",
    )
    .await;
    for (sub, email, reason) in [
        ("user_down", "down@example.com", "check_failed"),
        ("user_bug", "bug@example.com", "check_failed"),
        ("user_slow", "slow@example.com", "check_timed_out"),
    ] {
        sign_in_as(&fake, sub, json!({"email": email}));
        assert_denied(db, case, sub, reason, "could not be checked right now").await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 5);

    // The allow-lists run first: a user they refuse never reaches the hook.
    sign_in_as(&fake, "user_elsewhere", json!({"email": "x@example.org"}));
    assert_denied(
        db,
        case,
        "user_elsewhere",
        "email_domain_not_allowed",
        "example.org",
    )
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    // The failing hook left the server working.
    sign_in_as(&fake, "user_ok", json!({"email": "ok@example.com"}));
    assert_admitted(&client, &registered).await;
}

async fn a_denied_login_forgets_the_remembered_consent(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let app = ProxyApp::spawn(&fake, db.store().await, |b| {
        b.remember_consent(Duration::from_secs(3600))
            .allowed_email_domains(["example.com"])
    })
    .await;
    sign_in_as(&fake, "user_alice", json!({"email": "alice@example.org"}));
    let browser = Browser::default();
    let client = register(&app, &browser).await;
    let (_, challenge) = pkce();
    let remembered = "SELECT COUNT(*) FROM mcp_auth_consents WHERE client_id = $1";

    // Approve with "remember"; AuthKit signs in a user of another domain.
    let authorize = browser
        .get(&authorize_url(&app, &client, &challenge, STATE))
        .await;
    let page = browser.get(&authorize.header("location").unwrap()).await;
    let approved = browser
        .post_form(
            &app.url("/consent"),
            &[
                ("txn_id", &hidden_field(&page.text(), "txn_id")),
                ("csrf_token", &hidden_field(&page.text(), "csrf_token")),
                ("action", "approve"),
                ("remember", "1"),
            ],
        )
        .await;
    assert_eq!(approved.status, 302);
    assert_eq!(count(db, remembered, Some(&client.client_id)).await, 1);
    let upstream = browser.get(&approved.header("location").unwrap()).await;
    let denied = browser.get(&upstream.header("location").unwrap()).await;
    assert_eq!(denied.status, 302);
    let params = location_params(&denied);
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], STATE);

    // The approval is gone: the next attempt in this browser shows the consent page again.
    assert_eq!(count(db, remembered, Some(&client.client_id)).await, 0);
    let again = browser
        .navigate(&authorize_url(&app, &client, &challenge, "s2"))
        .await;
    let location = again.header("location").unwrap();
    assert!(location.contains("/consent?txn_id="), "{location}");
}

#[test]
fn login_policy_variables_name_themselves_and_the_bad_entry() {
    fn vars<'a>(extra: (&'a str, &'a str)) -> [(&'a str, &'a str); 5] {
        [
            ("WORKOS_CLIENT_ID", "client_1"),
            ("WORKOS_CLIENT_SECRET", "sk_test"),
            ("WORKOS_AUTHKIT_DOMAIN", "tenant.authkit.app"),
            ("MCP_BASE_URL", "https://mcp.example.com"),
            extra,
        ]
    }
    for (var, value, entry) in [
        (
            "MCP_AUTH_ALLOWED_EMAIL_DOMAINS",
            "example.com,@@bad",
            "@@bad",
        ),
        (
            "MCP_AUTH_ALLOWED_EMAIL_DOMAINS",
            "*.example.org",
            "*.example.org",
        ),
        ("MCP_AUTH_ALLOWED_EMAIL_DOMAINS", "localhost", "localhost"),
        ("MCP_AUTH_ALLOWED_ORGANIZATIONS", "org_01A org#2", "org#2"),
        ("MCP_AUTH_REQUIRED_ROLES", "admin r\"x", "r\"x"),
        ("MCP_AUTH_REQUIRED_PERMISSIONS", "docs:read é", "é"),
    ] {
        let err = WorkOsProviderBuilder::from_vars(vars((var, value)))
            .and_then(|b| b.validate())
            .expect_err("refused at start-up")
            .to_string();
        assert!(
            err.starts_with(&format!("{var} is invalid: `{entry}`")),
            "{err}"
        );
    }
    WorkOsProviderBuilder::from_vars(vars((
        "MCP_AUTH_ALLOWED_EMAIL_DOMAINS",
        "example.com, example.org",
    )))
    .and_then(|b| b.validate())
    .expect("valid lists");
}
