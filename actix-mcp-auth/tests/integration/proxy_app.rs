//! Proxy-mode test application: `WorkOsProvider` in a real `HttpServer` on a random port, over a
//! real database, against `FakeAuthKit`; plus the helpers the proxy tests share, built on the
//! library's scripted MCP client, `actix_mcp_auth_testing::OAuthTestClient` (cookie jar, PKCE, registration,
//! the login steps), and tests of that client itself.

use std::{collections::HashMap, net::TcpListener, sync::Arc, time::Duration};

use actix_mcp_auth::{
    AdminApi, Authenticated, WorkOsProvider, WorkOsProviderBuilder, store::Store,
};
use actix_mcp_auth_testing::{
    AuthorizeOptions, ConsentDecision, Endpoints, FakeAuthKit, OAuthClientError, OAuthTestClient,
    Pkce, RegisteredClient, TestResponse, query_params,
};
use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::{app::Reply, store_support::TestDb};

pub const CONNECT_CLIENT_ID: &str = "client_01CONNECT";
pub const CONNECT_SECRET: &str = "sk_test_connect_secret";
/// The admin API's secret in the test apps (mounted at `/admin`).
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// One replica of the app.
pub struct ProxyApp {
    pub base_url: String,
    pub provider: WorkOsProvider,
}

async fn echo_caller(user: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "subject": user.subject(),
        "client_id": user.client_id(),
        "scopes": user.scopes(),
        "claims": user.claims(),
    }))
}

/// A builder for `fake` and `base_url` with test-friendly settings.
pub fn builder(fake: &FakeAuthKit, base_url: &str) -> WorkOsProviderBuilder {
    WorkOsProvider::builder()
        .client_id(CONNECT_CLIENT_ID)
        .client_secret(CONNECT_SECRET)
        .authkit_domain(fake.issuer())
        .base_url(base_url)
        .http_timeout(Duration::from_secs(2))
}

/// Services a test replica mounts beside its own, given its provider.
pub type ExtraServices = Arc<dyn Fn(&WorkOsProvider, &mut web::ServiceConfig) + Send + Sync>;

/// How a test replica is mounted, beyond the provider's own settings.
#[derive(Clone, Default)]
pub struct Mount {
    /// Path of the public base URL (`/api`), or empty.
    pub path: &'static str,
    /// The public base URL says https (the replica itself still listens for plain http).
    pub https: bool,
    /// More services beside the provider's routes, the admin API and the MCP endpoint (e.g. the
    /// connected-apps page), given the replica's provider.
    pub extra: Option<ExtraServices>,
}

impl ProxyApp {
    /// Starts a replica on its own port; `configure` adjusts the provider.
    pub async fn spawn(
        fake: &FakeAuthKit,
        store: Store,
        configure: impl FnOnce(WorkOsProviderBuilder) -> WorkOsProviderBuilder,
    ) -> Self {
        Self::spawn_mounted(fake, store, Mount::default(), configure).await
    }

    /// Like [`spawn`](Self::spawn), with a base URL ending in `path` (`/api`).
    pub async fn spawn_at(
        fake: &FakeAuthKit,
        store: Store,
        path: &'static str,
        configure: impl FnOnce(WorkOsProviderBuilder) -> WorkOsProviderBuilder,
    ) -> Self {
        let mount = Mount {
            path,
            ..Mount::default()
        };
        Self::spawn_mounted(fake, store, mount, configure).await
    }

    /// Like [`spawn`](Self::spawn), mounted as `mount` says. `base_url` is where the replica
    /// listens (plain http), whatever the public scheme.
    pub async fn spawn_mounted(
        fake: &FakeAuthKit,
        store: Store,
        mount: Mount,
        configure: impl FnOnce(WorkOsProviderBuilder) -> WorkOsProviderBuilder,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let base_url = format!("http://127.0.0.1:{port}{}", mount.path);
        let scheme = if mount.https { "https" } else { "http" };
        let public_url = format!("{scheme}://127.0.0.1:{port}{}", mount.path);
        let provider = configure(builder(fake, &public_url))
            .build(store)
            .expect("provider builds");
        // The Connect app's redirect URI is our public callback (the configured issuer's).
        fake.register_connect_app(
            CONNECT_CLIENT_ID,
            CONNECT_SECRET,
            &[&format!("{}/auth/callback", provider.issuer())],
        );
        let p = provider.clone();
        let admin = AdminApi::new(provider.grants(), ADMIN_TOKEN).expect("admin token");
        let server = HttpServer::new(move || {
            let extra = mount.extra.clone();
            let p2 = p.clone();
            App::new()
                .service(p.routes())
                .service(admin.scope("/admin"))
                .configure(move |cfg| {
                    if let Some(extra) = &extra {
                        extra(&p2, cfg);
                    }
                })
                .service(
                    web::scope(p.mcp_path())
                        .wrap(p.bearer())
                        .route("", web::to(echo_caller)),
                )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        actix_web::rt::spawn(server);
        Self { base_url, provider }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// The endpoints of this replica (its own URLs), with the provider's issuer and resource
    /// (a second replica shares the first one's public URL).
    pub fn endpoints(&self) -> Endpoints {
        // `mcp_path()` is the mount path (base path included): join it to this replica's origin.
        let origin = url::Url::parse(&self.base_url)
            .expect("base URL")
            .origin()
            .ascii_serialization();
        Endpoints {
            issuer: self.provider.issuer().to_owned(),
            resource: self.provider.resource_url().to_owned(),
            mcp_url: format!("{origin}{}", self.provider.mcp_path()),
            ..Endpoints::for_server(&self.base_url, "")
        }
    }

    /// A scripted client of this replica with its own (empty) cookie jar.
    pub fn client(&self) -> OAuthTestClient {
        OAuthTestClient::new(&self.base_url).with_endpoints(self.endpoints())
    }

    /// A scripted client of this replica that uses `browser`'s cookie jar.
    pub fn driver(&self, browser: &Browser) -> OAuthTestClient {
        browser
            .driver
            .for_server(&self.base_url)
            .with_endpoints(self.endpoints())
    }
}

impl From<TestResponse> for Reply {
    fn from(response: TestResponse) -> Self {
        Self {
            status: response.status,
            headers: response.headers,
            body: response.body.to_vec(),
        }
    }
}

/// An HTTP client that keeps cookies like a browser: the scripted client's jar (per name, no
/// domain logic: one host). `client` sends requests without cookies.
pub struct Browser {
    pub client: awc::Client,
    driver: OAuthTestClient,
}

impl Default for Browser {
    fn default() -> Self {
        // The base URL only sets default endpoints, which the helpers never use: they go
        // through `ProxyApp::driver`, which shares this jar.
        let driver = OAuthTestClient::new("http://127.0.0.1");
        Self {
            client: driver.http().clone(),
            driver,
        }
    }
}

impl Browser {
    pub async fn get(&self, url: &str) -> Reply {
        self.driver.get(url).await.expect("GET").into()
    }

    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Reply {
        self.driver.post_form(url, form).await.expect("POST").into()
    }

    /// A top-level navigation the user started (`Sec-Fetch-Site: none`).
    pub async fn navigate(&self, url: &str) -> Reply {
        self.driver
            .get_with_headers(url, &[("Sec-Fetch-Site", "none")])
            .await
            .expect("GET")
            .into()
    }
}

/// PKCE pair: (verifier, S256 challenge).
pub fn pkce() -> (String, String) {
    let pair = Pkce::new();
    (pair.verifier, pair.challenge)
}

/// The query parameters of a `Location`.
pub fn location_params(reply: &Reply) -> HashMap<String, String> {
    let location = reply.header("location").expect("a Location header");
    url::Url::parse(&location).expect("absolute Location");
    query_params(&location).into_iter().collect()
}

/// A registered MCP client.
pub struct McpClient {
    pub client_id: String,
    pub client_secret: Option<String>,
    pub redirect_uri: String,
}

impl McpClient {
    /// The client as the scripted client knows it (only the id and redirect URI matter to
    /// the login steps; token requests of these tests send the client id in the body).
    pub fn registered(&self) -> RegisteredClient {
        RegisteredClient::public(&self.client_id, &self.redirect_uri)
    }
}

/// Registers a public client with refresh support.
pub async fn register(app: &ProxyApp, browser: &Browser) -> McpClient {
    register_with(app, browser, json!({"token_endpoint_auth_method": "none"})).await
}

/// Registers a client with extra metadata.
pub async fn register_with(app: &ProxyApp, browser: &Browser, extra: Value) -> McpClient {
    let redirect_uri = "http://127.0.0.1:9999/callback".to_owned();
    let mut body = json!({
        "client_name": "Test MCP client",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    // The scripted client expects 201 and fails with the status and body otherwise.
    let registered = app
        .driver(browser)
        .register(&body)
        .await
        .unwrap_or_else(|e| panic!("register: {e}"));
    McpClient {
        client_id: registered.client_id,
        client_secret: registered.client_secret,
        redirect_uri,
    }
}

/// Options of a standard request with the given challenge (the caller keeps the verifier).
fn options(challenge: &str, state: &str) -> AuthorizeOptions {
    AuthorizeOptions {
        state: Some(state.to_owned()),
        pkce: Some(Pkce {
            verifier: String::new(),
            challenge: challenge.to_owned(),
        }),
        ..AuthorizeOptions::default()
    }
}

/// The `/authorize` URL of a standard request.
pub fn authorize_url(app: &ProxyApp, client: &McpClient, challenge: &str, state: &str) -> String {
    let options = AuthorizeOptions {
        resource: Some(format!("{}/mcp", app.base_url)),
        ..options(challenge, state)
    };
    app.client()
        .authorization_request(&client.registered(), &options)
        .url
}

/// The hidden `name` field of a form page.
pub fn hidden_field(html: &str, name: &str) -> String {
    actix_mcp_auth_testing::hidden_field(html, name).unwrap_or_else(|| panic!("no {name} in page"))
}

/// Runs the browser part of a login, step by step on the given replicas (`steps[i]` serves
/// step i: authorize, consent page, consent post, callback), and returns our code.
pub async fn login_on(
    steps: [&ProxyApp; 4],
    browser: &Browser,
    client: &McpClient,
    challenge: &str,
) -> String {
    let state = "client-state-123";
    let request = steps[0]
        .driver(browser)
        .authorization_request(&client.registered(), &options(challenge, state));
    let consent_url = steps[0]
        .driver(browser)
        .start_authorization(&request)
        .await
        .unwrap_or_else(|e| panic!("authorize: {e}"));
    let consent_url = consent_url.replace(&steps[0].base_url, &steps[1].base_url);
    let mut form = steps[1]
        .driver(browser)
        .consent_form(&consent_url)
        .await
        .unwrap_or_else(|e| panic!("consent page: {e}"));
    form.action = steps[2].url("/consent");
    let upstream = steps[2]
        .driver(browser)
        .submit_consent(&form, ConsentDecision::Approve)
        .await
        .unwrap_or_else(|e| panic!("consent: {e}"));
    // AuthKit logs the user in and sends the browser back to the callback.
    let callback_url = browser
        .driver
        .follow(&upstream)
        .await
        .unwrap_or_else(|e| panic!("AuthKit: {e}"))
        .replace(&steps[0].base_url, &steps[3].base_url);
    // Back to the client's redirect URI, with our state and issuer (checked by the client).
    let code = steps[3]
        .driver(browser)
        .finish_authorization(&request, &callback_url)
        .await
        .unwrap_or_else(|e| panic!("callback: {e}"));
    assert_eq!(code.redirect_uri, client.redirect_uri, "back to the client");
    assert_eq!(code.state, state);
    assert_eq!(code.iss.as_deref(), Some(steps[3].provider.issuer()));
    code.code
}

/// `login_on` with every step on one replica.
pub async fn login(
    app: &ProxyApp,
    browser: &Browser,
    client: &McpClient,
    challenge: &str,
) -> String {
    login_on([app, app, app, app], browser, client, challenge).await
}

/// `POST /token` with a form (public client: `client_id` in the body).
pub async fn token_request(app: &ProxyApp, form: &[(&str, &str)]) -> Reply {
    app.client()
        .post_form(&app.url("/token"), form)
        .await
        .expect("token request")
        .into()
}

/// Redeems `code` and returns the token response.
pub async fn redeem(app: &ProxyApp, client: &McpClient, code: &str, verifier: &str) -> Value {
    let reply = token_request(
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("client_id", &client.client_id),
            ("redirect_uri", &client.redirect_uri),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
    reply.json()
}

/// `POST /mcp` with a bearer token (a JSON-RPC `tools/call`, as an MCP client sends it).
pub async fn call_mcp(app: &ProxyApp, token: &str) -> Reply {
    app.client()
        .call_tool(token, "whoami", json!({}))
        .await
        .expect("MCP call")
        .into()
}

// ---- the scripted client itself --------------------------------------------------------------

crate::store_support::http_tests!(
    oauth_test_client_discovers_logs_in_refreshes_and_revokes,
    oauth_test_client_reports_what_went_wrong,
    oauth_test_client_authenticates_confidential_clients,
);

async fn oauth_test_client_discovers_logs_in_refreshes_and_revokes(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let app = ProxyApp::spawn(&fake, db.store().await, |b| b).await;
    let mut client = OAuthTestClient::new(&app.base_url);
    let login = client.full_login().await.unwrap();

    // Discovery, from the 401, found this server's endpoints.
    assert_eq!(
        login.discovery.endpoints,
        Endpoints::for_server(&app.base_url, "/mcp")
    );
    assert_eq!(client.endpoints(), &login.discovery.endpoints);
    assert_eq!(
        login.discovery.resource_metadata_url,
        app.provider.resource_metadata_url()
    );
    assert_eq!(
        login.discovery.authorization_server["issuer"],
        json!(app.base_url)
    );
    assert!(login.tokens.access_token.starts_with("mcp_at_"));
    assert_eq!(login.tokens.token_type, "Bearer");
    assert!(login.tokens.expires_in.is_some_and(|s| s > 0));
    let refresh = login.tokens.refresh_token.clone().expect("a refresh token");
    // The browser-binding cookie was set at /authorize and removed by the callback.
    assert!(
        client.cookie_names().is_empty(),
        "{:?}",
        client.cookie_names()
    );

    // A tool call carries the user and the client.
    let me = client
        .call_tool(&login.tokens.access_token, "whoami", json!({}))
        .await
        .unwrap();
    assert_eq!(me.status, 200, "{}", me.text());
    let me = me.json().unwrap();
    assert_eq!(me["subject"], "user_01TEST");
    assert_eq!(me["client_id"], json!(login.client.client_id));

    // Refresh rotates; revoking the new refresh token ends the grant.
    let refreshed = client.refresh(&login.client, &refresh, None).await.unwrap();
    let new_refresh = refreshed.refresh_token.clone().expect("rotated");
    assert_ne!(new_refresh, refresh);
    let answer = client
        .call_tool(&refreshed.access_token, "whoami", json!({}))
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    client
        .revoke(&login.client, &new_refresh, Some("refresh_token"))
        .await
        .unwrap();
    let answer = client
        .call_tool(&refreshed.access_token, "whoami", json!({}))
        .await
        .unwrap();
    assert_eq!(answer.status, 401);
    let error = client
        .refresh(&login.client, &new_refresh, None)
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(400), "{error}");
    assert_eq!(error.oauth_error().as_deref(), Some("invalid_grant"));
}

async fn oauth_test_client_reports_what_went_wrong(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let app = ProxyApp::spawn(&fake, db.store().await, |b| b).await;
    let client = app.client();

    // A refused registration: status, body and OAuth error.
    let error = client
        .register(&json!({"redirect_uris": ["javascript:alert(1)"]}))
        .await
        .unwrap_err();
    assert!(
        matches!(error, OAuthClientError::Status { status: 400, .. }),
        "{error}"
    );
    assert_eq!(error.oauth_error().as_deref(), Some("invalid_redirect_uri"));
    let registered = client
        .register(&OAuthTestClient::default_client_metadata())
        .await
        .unwrap();
    assert_eq!(registered.token_endpoint_auth_method, "none");
    assert_eq!(registered.client_secret, None);

    // An error redirect from /authorize, with the client's state and our issuer.
    let options = AuthorizeOptions {
        scope: Some("admin".into()),
        state: Some("s-9".into()),
        ..AuthorizeOptions::default()
    };
    match client.authorize_and_consent(&registered, &options).await {
        Err(OAuthClientError::Authorization {
            error, state, iss, ..
        }) => {
            assert_eq!(error, "invalid_scope");
            assert_eq!(state.as_deref(), Some("s-9"));
            assert_eq!(iss.as_deref(), Some(app.base_url.as_str()));
        }
        other => panic!("expected an error redirect, got {other:?}"),
    }

    // Denied on our consent page, step by step.
    let request = client.authorization_request(&registered, &AuthorizeOptions::default());
    let consent_url = client.start_authorization(&request).await.unwrap();
    let form = client.consent_form(&consent_url).await.unwrap();
    assert!(
        form.page.text().contains("OAuthTestClient"),
        "the client is named"
    );
    let back = client
        .submit_consent(&form, ConsentDecision::Deny)
        .await
        .unwrap();
    assert!(back.starts_with(&registered.redirect_uri), "{back}");
    assert_eq!(query_params(&back)["error"], "access_denied");

    // Denied at AuthKit: relayed to the client.
    fake.set_deny_authorization(true);
    let error = client
        .authorize_and_consent(&registered, &AuthorizeOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        error.oauth_error().as_deref(),
        Some("access_denied"),
        "{error}"
    );
    fake.set_deny_authorization(false);

    // A replayed code: the token endpoint's JSON error.
    let code = client
        .authorize_and_consent(&registered, &AuthorizeOptions::default())
        .await
        .unwrap();
    client.exchange_code(&registered, &code).await.unwrap();
    let error = client.exchange_code(&registered, &code).await.unwrap_err();
    assert_eq!(error.status(), Some(400), "{error}");
    assert_eq!(error.oauth_error().as_deref(), Some("invalid_grant"));
    assert!(error.body().is_some_and(|b| b.contains("invalid_grant")));

    // Nobody listening: a transport error, not a panic.
    let nowhere = OAuthTestClient::new("http://127.0.0.1:9");
    let error = nowhere
        .register(&OAuthTestClient::default_client_metadata())
        .await
        .unwrap_err();
    assert!(
        matches!(error, OAuthClientError::Transport { .. }),
        "{error}"
    );
    assert_eq!(error.status(), None);
}

async fn oauth_test_client_authenticates_confidential_clients(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let app = ProxyApp::spawn(&fake, db.store().await, |b| b).await;
    let client = app.client();
    for method in ["client_secret_basic", "client_secret_post"] {
        let mut metadata = OAuthTestClient::default_client_metadata();
        metadata["token_endpoint_auth_method"] = json!(method);
        let registered = client.register(&metadata).await.unwrap();
        assert_eq!(registered.token_endpoint_auth_method, method);
        assert!(
            registered
                .client_secret
                .as_deref()
                .is_some_and(|s| s.starts_with("mcp_cs_"))
        );
        let options = AuthorizeOptions {
            scope: Some("offline_access".into()),
            ..AuthorizeOptions::default()
        };
        let code = client
            .authorize_and_consent(&registered, &options)
            .await
            .unwrap();
        let tokens = client.exchange_code(&registered, &code).await.unwrap();
        assert_eq!(tokens.scope.as_deref(), Some("offline_access"), "{method}");
        let refreshed = client
            .refresh(&registered, tokens.refresh_token.as_deref().unwrap(), None)
            .await
            .unwrap();

        // A wrong secret is refused (and burns nothing).
        let wrong = RegisteredClient {
            client_secret: Some("mcp_cs_wrong".into()),
            ..registered.clone()
        };
        let refresh = refreshed.refresh_token.as_deref().unwrap();
        let error = client.refresh(&wrong, refresh, None).await.unwrap_err();
        assert_eq!(error.status(), Some(401), "{method}: {error}");
        assert_eq!(error.oauth_error().as_deref(), Some("invalid_client"));

        client
            .revoke(&registered, &refreshed.access_token, None)
            .await
            .unwrap();
        let answer = client
            .call_tool(&refreshed.access_token, "whoami", json!({}))
            .await
            .unwrap();
        assert_eq!(answer.status, 401, "{method}");
        client.refresh(&registered, refresh, None).await.unwrap();
    }
}
