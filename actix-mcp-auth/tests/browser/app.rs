//! The server side of a browser test: FakeAuthKit, the library in proxy mode over a fresh
//! SQLite file in a real `HttpServer` on a random loopback port, and the MCP client's redirect
//! URI, a loopback listener that records what the browser brings back.

use std::{
    net::TcpListener,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_mcp_auth::{
    Authenticated, WorkOsProvider, WorkOsProviderBuilder,
    store::{Keyring, Store},
};
use actix_mcp_auth_testing::{AuthorizeOptions, FakeAuthKit, OAuthTestClient, RegisteredClient};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

const CONNECT_CLIENT_ID: &str = "client_01BROWSER";
const CONNECT_SECRET: &str = "sk_test_browser_secret";

/// Everything one test runs against.
pub struct Lab {
    pub fake: FakeAuthKit,
    pub base_url: String,
    /// `http://127.0.0.1:PORT/callback`: the MCP client's redirect URI.
    pub redirect_uri: String,
    /// Base URL of the client's listener (also serves `/js-probe` and `/csp-probe`).
    pub client_site: String,
    /// Query strings the listener received at `/callback`.
    pub received: Arc<Mutex<Vec<String>>>,
    db_file: PathBuf,
}

async fn whoami(user: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(json!({"subject": user.subject(), "client_id": user.client_id()}))
}

fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    (listener, url)
}

impl Lab {
    /// Starts everything; `configure` adjusts the provider.
    pub async fn start(
        configure: impl FnOnce(WorkOsProviderBuilder) -> WorkOsProviderBuilder,
    ) -> Self {
        let fake = FakeAuthKit::start();
        let db_file = std::env::temp_dir().join(format!(
            "mcp_auth_browser_{:016x}.db",
            rand::random::<u64>()
        ));
        let store = Store::connect(
            &format!("sqlite://{}", db_file.display()),
            Keyring::ephemeral(),
        )
        .await
        .expect("SQLite store");
        store.migrate().await.expect("migrations");

        let (app_listener, base_url) = listener();
        let builder = WorkOsProvider::builder()
            .client_id(CONNECT_CLIENT_ID)
            .client_secret(CONNECT_SECRET)
            .authkit_domain(fake.issuer())
            .base_url(&base_url)
            .http_timeout(Duration::from_secs(5));
        let provider = configure(builder).build(store).expect("provider builds");
        fake.register_connect_app(
            CONNECT_CLIENT_ID,
            CONNECT_SECRET,
            &[&format!("{}/auth/callback", provider.issuer())],
        );
        let p = provider.clone();
        let server = HttpServer::new(move || {
            App::new()
                .service(p.routes())
                .service(p.connected_apps())
                .service(
                    web::scope(p.mcp_path())
                        .wrap(p.bearer())
                        .route("", web::to(whoami)),
                )
        })
        .workers(1)
        .disable_signals()
        .listen(app_listener)
        .expect("listen")
        .run();
        actix_web::rt::spawn(server);

        let (client_listener, client_site) = listener();
        let received = Arc::new(Mutex::new(Vec::new()));
        let seen = received.clone();
        let client_server = HttpServer::new(move || {
            let seen = seen.clone();
            App::new()
                .route(
                    "/callback",
                    web::get().to(move |req: HttpRequest| {
                        let seen = seen.clone();
                        async move {
                            seen.lock().unwrap().push(req.query_string().to_owned());
                            HttpResponse::Ok()
                                .content_type("text/html; charset=utf-8")
                                .body("<!doctype html><title>Client</title><p>Back in the client.")
                        }
                    }),
                )
                .route(
                    "/csp-probe",
                    web::get().to(|| async {
                        HttpResponse::Ok()
                            .content_type("text/html; charset=utf-8")
                            .insert_header(("Content-Security-Policy", "style-src 'none'"))
                            .body("<!doctype html><title>csp</title><style>p{color:red}</style>")
                    }),
                )
                .route(
                    "/js-probe",
                    web::get().to(|| async {
                        HttpResponse::Ok()
                            .content_type("text/html; charset=utf-8")
                            .body(
                                "<!doctype html><title>js-off</title>\
                                 <script>document.title='js-on'</script>",
                            )
                    }),
                )
        })
        .workers(1)
        .disable_signals()
        .listen(client_listener)
        .expect("listen")
        .run();
        actix_web::rt::spawn(client_server);

        Self {
            redirect_uri: format!("{client_site}/callback"),
            client_site,
            fake,
            base_url,
            received,
            db_file,
        }
    }

    /// A complete login of a new client named `name` by the scripted client (the emulator's
    /// user); returns the access token.
    pub async fn connect_app(&self, name: &str) -> String {
        let client = self.register(json!(name)).await;
        let scripted = self.client();
        let code = scripted
            .authorize_and_consent(
                &client,
                &AuthorizeOptions {
                    scope: Some("offline_access".into()),
                    ..AuthorizeOptions::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("authorize {name}: {e}"));
        let tokens = scripted
            .exchange_code(&client, &code)
            .await
            .unwrap_or_else(|e| panic!("token {name}: {e}"));
        tokens.access_token
    }

    /// The MCP endpoint's status for `access_token`.
    pub async fn mcp_status(&self, access_token: &str) -> u16 {
        self.client()
            .call_tool(access_token, "whoami", json!({}))
            .await
            .expect("MCP call")
            .status
    }

    /// The scripted MCP client of this server (registration, token requests).
    pub fn client(&self) -> OAuthTestClient {
        OAuthTestClient::new(&self.base_url)
    }

    /// Registers a public client named `name` (JSON `null` for none) with our redirect URI.
    pub async fn register(&self, name: Value) -> RegisteredClient {
        self.client()
            .register(&json!({
                "client_name": name,
                "redirect_uris": [self.redirect_uri],
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "none",
                "scope": "offline_access",
            }))
            .await
            .unwrap_or_else(|e| panic!("register: {e}"))
    }

    /// A fresh authorization request of `client` (its PKCE verifier and state inside).
    pub fn request(
        &self,
        client: &RegisteredClient,
    ) -> actix_mcp_auth_testing::AuthorizationRequest {
        self.client().authorization_request(
            client,
            &AuthorizeOptions {
                scope: Some("offline_access".into()),
                ..AuthorizeOptions::default()
            },
        )
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.fake.stop();
        for suffix in ["", "-wal", "-shm"] {
            let mut file = self.db_file.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }
}
