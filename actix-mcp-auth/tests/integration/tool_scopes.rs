//! Per-tool scopes (`ScopePolicy`): the 403 step-up before the MCP service runs, in AuthKit
//! mode (tokens minted by FakeAuthKit with chosen scopes) and in proxy mode (our own tokens,
//! stepped up through a second login).

use std::{
    net::TcpListener,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use actix_mcp_auth::{
    AuthKitProvider, AuthKitProviderBuilder, Authenticated, ScopePolicy, WorkOsProvider,
};
use actix_mcp_auth_testing::{AuthorizeOptions, FakeAuthKit, OAuthTestClient};
use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::{
    app::Reply,
    proxy_app::{CONNECT_CLIENT_ID, CONNECT_SECRET},
    store_support::TestDb,
};

const POLICY: &str = "tools/call:admin_echo=mcp mcp:admin; resources/read=files:read; *=mcp; \
                      files:write>files:read";

/// How many requests reached the MCP service.
#[derive(Clone, Default)]
struct Calls(Arc<AtomicUsize>);

impl Calls {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// The MCP service of these tests: answers the body it received, byte for byte, and the
/// caller's scopes in a header.
async fn echo_body(body: web::Bytes, user: Authenticated, calls: web::Data<Calls>) -> HttpResponse {
    calls.0.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Ok()
        .insert_header(("x-scopes", user.scopes().join(" ")))
        .body(body)
}

struct AuthKitApp {
    base_url: String,
    provider: AuthKitProvider,
    fake: FakeAuthKit,
    calls: Calls,
    client: awc::Client,
}

impl AuthKitApp {
    async fn spawn(
        configure: impl FnOnce(AuthKitProviderBuilder) -> AuthKitProviderBuilder,
    ) -> Self {
        let fake = FakeAuthKit::start();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base_url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let provider = configure(crate::app::builder(&fake, &base_url))
            .build()
            .expect("provider builds");
        let calls = Calls::default();
        let (p, c) = (provider.clone(), calls.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(c.clone()))
                .service(p.routes())
                .service(
                    web::scope(p.mcp_path())
                        .wrap(p.bearer())
                        .route("", web::to(echo_body)),
                )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        actix_web::rt::spawn(server);
        Self {
            base_url,
            provider,
            fake,
            calls,
            client: awc::Client::default(),
        }
    }

    fn token(&self, scope: &str) -> String {
        self.fake
            .mint(json!({"aud": self.provider.resource_url(), "scope": scope}))
    }

    /// `POST /mcp` with `body` as is, a token with `scope`, and extra headers.
    async fn post(&self, scope: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = self
            .client
            .post(format!("{}/mcp", self.base_url))
            .insert_header(("content-type", "application/json"))
            .insert_header(("authorization", format!("Bearer {}", self.token(scope))));
        for header in headers {
            req = req.append_header(*header);
        }
        Reply::read(req.send_body(body.to_owned()).await.expect("request")).await
    }

    fn challenge(&self, scope: &str) -> String {
        format!(
            "Bearer error=\"insufficient_scope\", error_description=\"the token lacks a scope \
             this request needs\", scope=\"{scope}\", resource_metadata=\"{}/.well-known/\
             oauth-protected-resource/mcp\"",
            self.base_url
        )
    }
}

fn tool_call(name: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": name, "arguments": {"text": "héllo"}}})
    .to_string()
}

#[actix_web::test]
async fn a_tool_needing_more_is_refused_with_one_challenge_and_never_runs() {
    let app = AuthKitApp::spawn(|b| b.tool_scopes(POLICY.parse().unwrap())).await;
    let reply = app.post("mcp", &tool_call("admin_echo"), &[]).await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert_eq!(reply.challenge(), app.challenge("mcp mcp:admin"));
    assert_eq!(reply.json()["error"], "insufficient_scope");
    assert_eq!(app.calls.count(), 0, "the service never saw the request");

    // With the scope, the same request reaches the service with its body intact.
    let body = format!("  {}\n", tool_call("admin_echo"));
    let reply = app.post("mcp mcp:admin", &body, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), body);
    assert_eq!(app.calls.count(), 1);

    // Other tools and methods need the default scope only.
    for body in [
        tool_call("whoami"),
        json!({"method": "tools/list", "id": 2}).to_string(),
    ] {
        let reply = app.post("mcp", &body, &[]).await;
        assert_eq!(reply.status, 200, "{body}");
        assert_eq!(reply.text(), body);
        let reply = app.post("openid", &body, &[]).await;
        assert_eq!(reply.status, 403, "{body}");
        assert_eq!(reply.challenge(), app.challenge("mcp"));
    }
}

#[actix_web::test]
async fn required_scopes_and_the_request_share_one_challenge() {
    let app = AuthKitApp::spawn(|b| {
        b.required_scopes(["openid"])
            .tool_scopes(POLICY.parse().unwrap())
    })
    .await;
    let reply = app.post("mcp", &tool_call("admin_echo"), &[]).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.challenge(), app.challenge("openid mcp mcp:admin"));
    // The 401 announces the required and the default scopes.
    let reply = Reply::read(
        app.client
            .post(format!("{}/mcp", app.base_url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 401);
    assert!(
        reply
            .challenge()
            .starts_with("Bearer scope=\"openid mcp\", "),
        "{}",
        reply.challenge()
    );
}

#[actix_web::test]
async fn batches_need_every_message_scopes() {
    let app = AuthKitApp::spawn(|b| b.tool_scopes(POLICY.parse().unwrap())).await;
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {"uri": "file:///a"}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "admin_echo"}},
    ])
    .to_string();
    let reply = app.post("mcp", &batch, &[]).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.challenge(), app.challenge("mcp files:read mcp:admin"));
    // files:write implies files:read.
    let reply = app.post("mcp mcp:admin files:write", &batch, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), batch);
    assert_eq!(app.calls.count(), 1);
}

#[actix_web::test]
async fn sep_2243_headers_must_agree_with_the_body() {
    let app = AuthKitApp::spawn(|b| b.tool_scopes(POLICY.parse().unwrap())).await;
    let body = tool_call("admin_echo");
    // Agreeing headers: the body decides, as without headers.
    let agree = [("mcp-method", "tools/call"), ("mcp-name", "admin_echo")];
    assert_eq!(app.post("mcp", &body, &agree).await.status, 403);
    assert_eq!(app.post("mcp mcp:admin", &body, &agree).await.status, 200);
    // Base64-wrapped names are decoded.
    let encoded = [
        ("mcp-method", "tools/call"),
        ("mcp-name", "=?base64?YWRtaW5fZWNobw==?="),
    ];
    assert_eq!(app.post("mcp mcp:admin", &body, &encoded).await.status, 200);
    let before = app.calls.count();
    for lie in [
        vec![("mcp-method", "tools/call"), ("mcp-name", "whoami")],
        vec![("mcp-method", "tools/list")],
        vec![("mcp-method", "tools/call")],
        vec![("mcp-name", "admin_echo")],
        vec![
            ("mcp-method", "tools/call"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "admin_echo"),
        ],
        vec![
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?not base64?="),
        ],
    ] {
        let reply = app.post("mcp mcp:admin", &body, &lie).await;
        assert_eq!(reply.status, 400, "{lie:?}");
        let json = reply.json();
        assert_eq!(json["error"]["code"], -32020, "{lie:?}");
        assert_eq!(json["jsonrpc"], "2.0");
    }
    assert_eq!(
        app.calls.count(),
        before,
        "no refused request reached the service"
    );
}

#[actix_web::test]
async fn unreadable_bodies_need_every_scope_and_garbage_the_default() {
    let policy = ScopePolicy::builder()
        .tool("admin_echo", ["mcp", "mcp:admin"])
        .default_scopes(["mcp"])
        .max_body_size(512)
        .build()
        .unwrap();
    let app = AuthKitApp::spawn(|b| b.tool_scopes(policy)).await;
    // A padded body beyond the limit could hide any call: every scope of the policy.
    let big = json!({"method": "tools/call", "params": {"arguments": {"pad": "x".repeat(4000)},
                     "name": "admin_echo"}})
    .to_string();
    let reply = app.post("mcp", &big, &[]).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.challenge(), app.challenge("mcp mcp:admin"));
    let reply = app.post("mcp mcp:admin", &big, &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.text(),
        big,
        "the service gets the whole body, read part and rest"
    );
    // A compressed body is not read: it could be anything.
    let reply = app
        .post("mcp", &tool_call("whoami"), &[("content-encoding", "gzip")])
        .await;
    assert_eq!(reply.status, 403);
    // A body that is not JSON-RPC needs the default scope.
    assert_eq!(app.post("mcp", "not json", &[]).await.status, 200);
    assert_eq!(app.post("openid", "not json", &[]).await.status, 403);
}

#[actix_web::test]
async fn metadata_lists_the_policy_scopes() {
    let app = AuthKitApp::spawn(|b| {
        b.required_scopes(["openid"])
            .tool_scopes(POLICY.parse().unwrap())
    })
    .await;
    let reply = Reply::read(
        app.client
            .get(format!(
                "{}/.well-known/oauth-protected-resource/mcp",
                app.base_url
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        reply.json()["scopes_supported"],
        json!(["openid", "mcp", "mcp:admin", "files:read", "files:write"])
    );
}

#[actix_web::test]
async fn the_environment_variable_configures_the_policy_and_names_bad_entries() {
    let vars = |policy: &str| {
        vec![
            ("WORKOS_AUTHKIT_DOMAIN", "tenant.authkit.app".to_owned()),
            ("MCP_BASE_URL", "https://mcp.example.com".to_owned()),
            ("MCP_AUTH_TOOL_SCOPES", policy.to_owned()),
        ]
    };
    let provider = AuthKitProviderBuilder::from_vars(vars(POLICY))
        .unwrap()
        .build()
        .unwrap();
    assert!(
        provider
            .resource_metadata()
            .scopes_supported
            .contains(&"mcp:admin".to_owned())
    );
    let err = AuthKitProviderBuilder::from_vars(vars("*=mcp; tools/list:x=mcp")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "MCP_AUTH_TOOL_SCOPES is invalid: entry `tools/list:x=mcp`: only tools/call, \
         prompts/get and resources/read, /subscribe, /unsubscribe target a name"
    );
}

// ---- proxy mode ------------------------------------------------------------------------------

crate::store_support::http_tests!(proxy_mode_steps_up_through_a_second_consent);

async fn spawn_proxy(fake: &FakeAuthKit, db: &TestDb) -> (String, WorkOsProvider, Calls) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base_url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let provider = crate::proxy_app::builder(fake, &base_url)
        .tool_scopes(POLICY.parse().unwrap())
        .build(db.store().await)
        .expect("provider builds");
    fake.register_connect_app(
        CONNECT_CLIENT_ID,
        CONNECT_SECRET,
        &[&format!("{base_url}/auth/callback")],
    );
    let calls = Calls::default();
    let (p, c) = (provider.clone(), calls.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(c.clone()))
            .service(p.routes())
            .service(
                web::scope(p.mcp_path())
                    .wrap(p.bearer())
                    .route("", web::to(echo_body)),
            )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .expect("listen")
    .run();
    actix_web::rt::spawn(server);
    (base_url, provider, calls)
}

/// Logs `client` in asking for `scope`; returns the access token.
async fn login(
    oauth: &OAuthTestClient,
    client: &actix_mcp_auth_testing::RegisteredClient,
    scope: &str,
) -> String {
    let options = AuthorizeOptions {
        scope: Some(scope.to_owned()),
        ..AuthorizeOptions::default()
    };
    let code = oauth
        .authorize_and_consent(client, &options)
        .await
        .unwrap_or_else(|e| panic!("login: {e}"));
    let tokens = oauth
        .exchange_code(client, &code)
        .await
        .unwrap_or_else(|e| panic!("token: {e}"));
    assert_eq!(tokens.scope.as_deref(), Some(scope));
    tokens.access_token
}

fn challenge_scope(reply: &Reply) -> String {
    let challenge = reply.challenge();
    let start = challenge.find("scope=\"").expect("scope") + 7;
    challenge[start..][..challenge[start..].find('"').unwrap()].to_owned()
}

async fn proxy_mode_steps_up_through_a_second_consent(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let (base_url, provider, calls) = spawn_proxy(&fake, db).await;
    let mut oauth = OAuthTestClient::new(&base_url);
    let discovery = oauth.discover().await.expect("discovery");
    for document in [
        &discovery.protected_resource,
        &discovery.authorization_server,
    ] {
        let supported = document["scopes_supported"].as_array().unwrap();
        for scope in ["mcp", "mcp:admin", "files:read", "files:write"] {
            assert!(supported.contains(&json!(scope)), "{scope} in {document}");
        }
    }
    let client = oauth
        .register(&OAuthTestClient::default_client_metadata())
        .await
        .expect("register");

    let token = login(&oauth, &client, "mcp").await;
    let reply: Reply = oauth
        .call_tool(&token, "admin_echo", json!({}))
        .await
        .unwrap()
        .into();
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert!(reply.challenge().contains(&format!(
        "resource_metadata=\"{}\"",
        provider.resource_metadata_url()
    )));
    let needed = challenge_scope(&reply);
    assert_eq!(needed, "mcp mcp:admin");
    assert_eq!(calls.count(), 0);
    let reply: Reply = oauth
        .call_tool(&token, "whoami", json!({}))
        .await
        .unwrap()
        .into();
    assert_eq!(reply.status, 200);

    // The client asks again with what the challenge named, consents, and gets through.
    let stepped_up = login(&oauth, &client, &needed).await;
    let reply: Reply = oauth
        .call_tool(&stepped_up, "admin_echo", json!({"text": "hi"}))
        .await
        .unwrap()
        .into();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let echoed: Value = reply.json();
    assert_eq!(echoed["params"]["name"], "admin_echo");
    assert_eq!(echoed["params"]["arguments"]["text"], "hi");
    assert_eq!(reply.header("x-scopes").as_deref(), Some("mcp mcp:admin"));
    assert_eq!(calls.count(), 2);
}
