//! Test application: the library mounted in a real `HttpServer` on a random port.

use std::{net::TcpListener, time::Duration};

use actix_mcp_auth::{AuthKitProvider, AuthKitProviderBuilder, Authenticated};
use actix_mcp_auth_testing::FakeAuthKit;
use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

/// A running application and the fake AuthKit behind it.
pub struct TestApp {
    pub base_url: String,
    pub provider: AuthKitProvider,
    pub fake: FakeAuthKit,
    pub client: awc::Client,
}

/// A provider builder pointed at `fake`, with test-friendly refresh intervals.
pub fn builder(fake: &FakeAuthKit, base_url: &str) -> AuthKitProviderBuilder {
    AuthKitProvider::builder()
        .authkit_domain(fake.issuer())
        .base_url(base_url)
        .jwks_min_refresh_interval(Duration::ZERO)
        .http_timeout(Duration::from_secs(2))
}

async fn echo_caller(user: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "subject": user.subject(),
        "client_id": user.client_id(),
        "scopes": user.scopes(),
        "claims": user.claims(),
    }))
}

impl TestApp {
    /// Starts a fake AuthKit and an app with the default test settings.
    pub async fn spawn() -> Self {
        Self::spawn_with(|b| b).await
    }

    /// Starts a fake AuthKit and an app whose provider builder is adjusted by `configure`.
    pub async fn spawn_with(
        configure: impl FnOnce(AuthKitProviderBuilder) -> AuthKitProviderBuilder,
    ) -> Self {
        Self::spawn_on(FakeAuthKit::start(), configure).await
    }

    /// Starts an app against an existing fake.
    pub async fn spawn_on(
        fake: FakeAuthKit,
        configure: impl FnOnce(AuthKitProviderBuilder) -> AuthKitProviderBuilder,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base_url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let provider = configure(builder(&fake, &base_url))
            .build()
            .expect("provider builds");
        let routes_provider = provider.clone();
        let server = HttpServer::new(move || {
            let p = routes_provider.clone();
            App::new()
                .service(p.routes())
                .route(
                    "/open",
                    web::get().to(|| async { HttpResponse::Ok().body("open") }),
                )
                .service(
                    web::scope(p.mcp_path())
                        .wrap(p.bearer())
                        .route("", web::to(echo_caller))
                        .route("/{tail:.*}", web::to(echo_caller)),
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
            client: awc::Client::builder()
                .timeout(Duration::from_secs(10))
                .disable_redirects()
                .finish(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// The canonical MCP URL: the audience tokens need.
    pub fn resource(&self) -> String {
        self.provider.resource_url().to_owned()
    }

    /// A valid token for this app, with `claims` merged in.
    pub fn token(&self, claims: Value) -> String {
        let mut all = json!({ "aud": self.resource() });
        if let (Some(all), Some(extra)) = (all.as_object_mut(), claims.as_object()) {
            all.extend(extra.clone());
        }
        self.fake.mint(all)
    }

    /// `POST /mcp` with an optional `Authorization` value; returns status, headers and body.
    pub async fn call_mcp(&self, authorization: Option<&str>) -> Reply {
        let mut req = self.client.post(self.url("/mcp"));
        if let Some(value) = authorization {
            req = req.insert_header(("Authorization", value));
        }
        Reply::read(req.send().await.expect("request")).await
    }

    /// `POST /mcp` with `Bearer <token>`.
    pub async fn call_with(&self, token: &str) -> Reply {
        self.call_mcp(Some(&format!("Bearer {token}"))).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        Reply::read(
            self.client
                .get(self.url(path))
                .send()
                .await
                .expect("request"),
        )
        .await
    }
}

/// What a test needs from a response.
pub struct Reply {
    pub status: u16,
    pub headers: actix_web::http::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub async fn read<S>(mut res: awc::ClientResponse<S>) -> Self
    where
        S: futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>>
            + Unpin,
    {
        let body = res.body().limit(1 << 20).await.expect("body").to_vec();
        Self {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header").to_owned())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `WWW-Authenticate` challenge, which must exist.
    pub fn challenge(&self) -> String {
        self.header("www-authenticate")
            .expect("WWW-Authenticate header")
    }
}
