//! Proxy-mode test application: `WorkOsProvider` in a real `HttpServer` on a random port, over a
//! real database, against `FakeAuthKit`; plus a cookie-keeping "browser" and an MCP client's
//! login driver.

use std::{cell::RefCell, collections::HashMap, net::TcpListener, time::Duration};

use actix_mcp_auth::{
    Authenticated, WorkOsProvider, WorkOsProviderBuilder, store::Store, testing::FakeAuthKit,
};
use actix_web::{App, HttpResponse, HttpServer, web};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::app::Reply;

pub const CONNECT_CLIENT_ID: &str = "client_01CONNECT";
pub const CONNECT_SECRET: &str = "sk_test_connect_secret";

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
        .timeout(Duration::from_secs(2))
}

impl ProxyApp {
    /// Starts a replica on its own port; `configure` adjusts the provider.
    pub async fn spawn(
        fake: &FakeAuthKit,
        store: Store,
        configure: impl FnOnce(WorkOsProviderBuilder) -> WorkOsProviderBuilder,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base_url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let provider = configure(builder(fake, &base_url))
            .build(store)
            .expect("provider builds");
        // The Connect app's redirect URI is our public callback (the configured issuer's).
        fake.register_connect_app(
            CONNECT_CLIENT_ID,
            CONNECT_SECRET,
            &[&format!("{}/auth/callback", provider.issuer())],
        );
        let p = provider.clone();
        let server = HttpServer::new(move || {
            App::new().service(p.routes()).service(
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
}

/// An HTTP client that keeps cookies like a browser (per name, no domain logic: one host).
pub struct Browser {
    pub client: awc::Client,
    cookies: RefCell<HashMap<String, String>>,
}

impl Default for Browser {
    fn default() -> Self {
        Self {
            client: awc::Client::builder()
                .timeout(Duration::from_secs(10))
                .disable_redirects()
                .finish(),
            cookies: RefCell::default(),
        }
    }
}

impl Browser {
    fn cookie_header(&self) -> Option<String> {
        let jar = self.cookies.borrow();
        (!jar.is_empty()).then(|| {
            jar.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn keep_cookies(&self, reply: &Reply) {
        for value in reply.headers.get_all("set-cookie") {
            let Ok(value) = value.to_str() else { continue };
            let Some((pair, attributes)) = value.split_once(';').or(Some((value, ""))) else {
                continue;
            };
            let Some((name, val)) = pair.split_once('=') else {
                continue;
            };
            let removed = attributes.to_ascii_lowercase().contains("max-age=0") || val.is_empty();
            if removed {
                self.cookies.borrow_mut().remove(name.trim());
            } else {
                self.cookies
                    .borrow_mut()
                    .insert(name.trim().to_owned(), val.trim().to_owned());
            }
        }
    }

    pub async fn get(&self, url: &str) -> Reply {
        let mut req = self.client.get(url);
        if let Some(cookies) = self.cookie_header() {
            req = req.insert_header(("Cookie", cookies));
        }
        let reply = Reply::read(req.send().await.expect("GET")).await;
        self.keep_cookies(&reply);
        reply
    }

    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Reply {
        let mut req = self.client.post(url);
        if let Some(cookies) = self.cookie_header() {
            req = req.insert_header(("Cookie", cookies));
        }
        let reply = Reply::read(req.send_form(&form).await.expect("POST")).await;
        self.keep_cookies(&reply);
        reply
    }
}

/// PKCE pair: (verifier, S256 challenge).
pub fn pkce() -> (String, String) {
    let verifier = format!("verifier-{}-{}", rand::random::<u64>(), "x".repeat(30));
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The query parameters of a `Location`.
pub fn location_params(reply: &Reply) -> HashMap<String, String> {
    let location = reply.header("location").expect("a Location header");
    let url = url::Url::parse(&location).expect("absolute Location");
    url.query_pairs().into_owned().collect()
}

/// A registered MCP client.
pub struct McpClient {
    pub client_id: String,
    pub client_secret: Option<String>,
    pub redirect_uri: String,
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
    let res = browser
        .client
        .post(app.url("/register"))
        .send_json(&body)
        .await
        .expect("register");
    let reply = Reply::read(res).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let doc = reply.json();
    McpClient {
        client_id: doc["client_id"].as_str().unwrap().to_owned(),
        client_secret: doc["client_secret"].as_str().map(str::to_owned),
        redirect_uri,
    }
}

/// The `/authorize` URL of a standard request.
pub fn authorize_url(app: &ProxyApp, client: &McpClient, challenge: &str, state: &str) -> String {
    let mut url = url::Url::parse(&app.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.client_id)
        .append_pair("redirect_uri", &client.redirect_uri)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", state)
        .append_pair("resource", &format!("{}/mcp", app.base_url));
    url.to_string()
}

/// The hidden `name` field of a form page.
pub fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in page"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
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
    let authorize = browser
        .get(&authorize_url(steps[0], client, challenge, state))
        .await;
    assert_eq!(authorize.status, 302, "{}", authorize.text());
    let consent_url = authorize.header("location").unwrap();
    let consent_url = consent_url.replace(&steps[0].base_url, &steps[1].base_url);
    let page = browser.get(&consent_url).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let txn_id = hidden_field(&page.text(), "txn_id");
    let csrf = hidden_field(&page.text(), "csrf_token");
    let approved = browser
        .post_form(
            &steps[2].url("/consent"),
            &[
                ("txn_id", &txn_id),
                ("csrf_token", &csrf),
                ("action", "approve"),
            ],
        )
        .await;
    assert_eq!(approved.status, 302, "{}", approved.text());
    // AuthKit logs the user in and sends the browser back to the callback.
    let upstream = browser.get(&approved.header("location").unwrap()).await;
    assert_eq!(upstream.status, 302, "{}", upstream.text());
    let callback_url = upstream
        .header("location")
        .unwrap()
        .replace(&steps[0].base_url, &steps[3].base_url);
    let done = browser.get(&callback_url).await;
    assert_eq!(done.status, 302, "{}", done.text());
    let params = location_params(&done);
    assert!(
        done.header("location")
            .unwrap()
            .starts_with(&client.redirect_uri),
        "back to the client"
    );
    assert_eq!(params.get("state").map(String::as_str), Some(state));
    assert_eq!(
        params.get("iss").map(String::as_str),
        Some(steps[3].provider.issuer())
    );
    params.get("code").expect("a code").clone()
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
    let res = awc::Client::default()
        .post(app.url("/token"))
        .send_form(&form)
        .await
        .expect("token request");
    Reply::read(res).await
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

/// `POST /mcp` with a bearer token.
pub async fn call_mcp(app: &ProxyApp, token: &str) -> Reply {
    let res = awc::Client::default()
        .post(app.url("/mcp"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .expect("MCP call");
    Reply::read(res).await
}
