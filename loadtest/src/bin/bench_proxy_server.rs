//! **FOR BENCHMARKS ONLY — DO NOT DEPLOY.** Proxy mode (`WorkOsProvider`) in front of an
//! embedded AuthKit emulator, serving the MCP endpoint twice from one process:
//!
//! * `MCP_PATH` (default `/mcp`): behind proxy-mode bearer auth, as in the `quickstart`
//!   example;
//! * `/open` + `MCP_PATH` (default `/open/mcp`): **the same MCP service with no authentication
//!   at all**, a baseline so that a load test can measure what the bearer check costs;
//! * `GET /bench/counters`: **unauthenticated** JSON with the emulator's request counters
//!   (`userinfo`, `token`, `authorize`) and the number of tokens in the verified-token cache.
//!
//! Anyone who can reach `/open/mcp` can call every tool without a token. Both extra routes
//! exist only for `scripts/wrk-proxy.sh`.
//!
//! On start it opens (and migrates) the database, starts the server, then logs in once through
//! the real flow with `testing::OAuthTestClient` (discovery from the 401, registration, consent,
//! the emulator's login, code exchange) and prints `TOKEN=<access token>`; with
//! `FAKE_TOKENS=N` it logs in N times (one client, N grants) and prints N `TOKEN=` lines, each a
//! distinct token with its own grant. Then it prints `READY` and serves until Ctrl-C.
//!
//! # Environment (all optional; no `.env` file is read)
//!
//! | variable | meaning |
//! | --- | --- |
//! | `MCP_HOST` / `MCP_PORT` | address to listen on, default `127.0.0.1` / `8000` |
//! | `MCP_BASE_URL` | public base URL, default `http://127.0.0.1:` + `MCP_PORT`; must reach this server (the login goes through it) |
//! | `MCP_PATH` | path of the MCP endpoint, default `/mcp` |
//! | `DATABASE_URL` | default `sqlite://bench_proxy.db` (created when missing) |
//! | `FAKE_TOKENS` | number of access tokens to print, default 1 |
//! | `MCP_AUTH_TOKEN_CACHE_SECONDS`, `MCP_AUTH_USERINFO_CACHE_SECONDS`, other `MCP_AUTH_*` | as for `WorkOsProvider::from_env` (defaults: 30 s caches) |
//! | `RUST_LOG` | log filter, default `info,rmcp=warn`; use `warn` when measuring |
//!
//! ```sh
//! cargo run --release -p actix-mcp-auth-loadtest --bin bench_proxy_server   # prints TOKEN=... then READY
//! ```
//!
//! `scripts/wrk-proxy.sh` does this and runs `wrk` against both endpoints.

use actix_mcp_auth_loadtest::support;

use actix_mcp_auth::{WorkOsProvider, WorkOsProviderBuilder, store::Keyring};
use actix_mcp_auth_testing::{AuthorizeOptions, Endpoint, Endpoints, FakeAuthKit, OAuthTestClient};
use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::json;

/// Prefix of the unprotected copy of the MCP endpoint.
const OPEN_PREFIX: &str = "/open";
/// The database used when `DATABASE_URL` is not set (`Store::connect` creates the file).
const DEFAULT_DATABASE_URL: &str = "sqlite://bench_proxy.db";
/// Our callback, registered as redirect URI of the emulated Connect application.
const REDIRECT_PATH: &str = "/auth/callback";
/// Most tokens `FAKE_TOKENS` may ask for.
const MAX_TOKENS: usize = 100_000;

fn env_var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// `len` random bytes as lower-case hex.
fn random_hex(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::fill(bytes.as_mut_slice());
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The provider builder: our emulator's Connect app and base URL, plus the `MCP_AUTH_*`,
/// `MCP_PATH`, `WORKOS_REQUIRED_SCOPES` and `WORKOS_TIMEOUT_SECONDS` variables of the
/// environment, read as `WorkOsProvider::from_env` reads them.
fn builder(
    fake: &FakeAuthKit,
    client_id: &str,
    client_secret: &str,
    base_url: &str,
) -> WorkOsProviderBuilder {
    let passed = |name: &str| {
        name.starts_with("MCP_AUTH_")
            || matches!(
                name,
                "MCP_PATH" | "WORKOS_REQUIRED_SCOPES" | "WORKOS_TIMEOUT_SECONDS"
            )
    };
    let mut vars: Vec<(String, String)> = std::env::vars().filter(|(k, _)| passed(k)).collect();
    vars.extend([
        ("WORKOS_CLIENT_ID".to_owned(), client_id.to_owned()),
        ("WORKOS_CLIENT_SECRET".to_owned(), client_secret.to_owned()),
        ("WORKOS_AUTHKIT_DOMAIN".to_owned(), fake.issuer()),
        ("MCP_BASE_URL".to_owned(), base_url.to_owned()),
        ("WORKOS_REDIRECT_PATH".to_owned(), REDIRECT_PATH.to_owned()),
    ]);
    match WorkOsProviderBuilder::from_vars(vars) {
        // The logins that mint benchmark tokens come from one address in a burst.
        Ok(builder) => builder.rate_limits(actix_mcp_auth::RateLimits::disabled()),
        Err(e) => support::exit_with(e),
    }
}

/// Logs in `count` times through the real flow and returns the access tokens.
async fn log_in(provider: &WorkOsProvider, count: usize) -> Result<Vec<String>, String> {
    // The MCP URL is the resource URL (`mcp_path()` is the mount path, which already includes
    // the path of a base URL that has one).
    let endpoints = Endpoints {
        mcp_url: provider.resource_url().to_owned(),
        ..Endpoints::for_server(provider.issuer(), "")
    };
    let mut client = OAuthTestClient::new(provider.issuer()).with_endpoints(endpoints);
    let first = client.full_login().await.map_err(|e| e.to_string())?;
    let mut tokens = vec![first.tokens.access_token];
    while tokens.len() < count {
        let code = client
            .authorize_and_consent(&first.client, &AuthorizeOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let set = client
            .exchange_code(&first.client, &code)
            .await
            .map_err(|e| e.to_string())?;
        tokens.push(set.access_token);
    }
    Ok(tokens)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    support::init_tracing();
    let (host, port) = support::listen_addr();
    let base_url = env_var("MCP_BASE_URL").unwrap_or_else(|| format!("http://127.0.0.1:{port}"));
    let database_url = env_var("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
    let token_count = match env_var("FAKE_TOKENS").map(|n| n.parse::<usize>()) {
        None => 1,
        Some(Ok(n)) if (1..=MAX_TOKENS).contains(&n) => n,
        Some(_) => support::exit_with(format!(
            "FAKE_TOKENS must be a number from 1 to {MAX_TOKENS}"
        )),
    };

    let fake = FakeAuthKit::start();
    let client_id = format!("client_bench_{}", random_hex(8));
    let client_secret = format!("sk_bench_{}", random_hex(24));
    let store = support::open_store(&database_url, Keyring::ephemeral()).await;
    let provider = match builder(&fake, &client_id, &client_secret, &base_url).build(store) {
        Ok(provider) => provider,
        Err(e) => support::exit_with(format!("{e} (check MCP_BASE_URL and MCP_PATH)")),
    };
    // Building the provider starts nothing in the background: delete expired OAuth state every
    // MCP_AUTH_SWEEP_INTERVAL_SECONDS while the server runs (dropping the handle stops it).
    let _sweeper = provider
        .store()
        .spawn_sweeper(provider.sweep_interval(), 500);
    let callback = format!("{}{REDIRECT_PATH}", provider.issuer());
    fake.register_connect_app(&client_id, &client_secret, &[callback.as_str()]);

    let base = url::Url::parse(provider.issuer()).ok();
    let mcp = support::mcp_service(support::allowed_hosts(
        base.as_ref().and_then(|url| url.host_str()),
        base.as_ref().and_then(|url| url.port()),
    ));
    let open_path = format!("{OPEN_PREFIX}{}", provider.mcp_path());
    let origin = base
        .as_ref()
        .map(|url| url.origin().ascii_serialization())
        .unwrap_or_default();
    println!("protected MCP endpoint: {}", provider.resource_url());
    println!("UNPROTECTED MCP endpoint (benchmark baseline only!): {origin}{open_path}");
    println!("UNPROTECTED counters (benchmark only!): {origin}/bench/counters");
    tracing::warn!(path = %open_path, "bench_proxy_server serves an UNAUTHENTICATED MCP endpoint and /bench/counters; never deploy it");

    let (server_provider, server_fake) = (provider.clone(), fake.clone());
    let server = HttpServer::new(move || {
        let (provider, fake) = (server_provider.clone(), server_fake.clone());
        let counters = move || {
            let body = json!({
                "userinfo": fake.calls(Endpoint::UserInfo),
                "token": fake.calls(Endpoint::Token),
                "authorize": fake.calls(Endpoint::Authorize),
                "cached_tokens": provider.cached_tokens(),
            });
            async move { HttpResponse::Ok().json(body) }
        };
        App::new()
            .route("/healthz", web::get().to(support::healthz))
            .route("/bench/counters", web::get().to(counters))
            // The OAuth endpoints first: single resources at the host root.
            .service(server_provider.routes())
            .service(
                web::scope(server_provider.mcp_path())
                    .wrap(server_provider.bearer())
                    .service(mcp.clone().scope()),
            )
            .service(web::scope(&open_path).service(mcp.clone().scope()))
    })
    .client_request_timeout(support::CLIENT_REQUEST_TIMEOUT)
    .client_disconnect_timeout(support::CLIENT_DISCONNECT_TIMEOUT);
    let server = match server.bind((host.as_str(), port)) {
        Ok(server) => server.run(),
        Err(e) => support::exit_with(format!(
            "cannot listen on {host}:{port} ({e}); choose another MCP_HOST / MCP_PORT"
        )),
    };
    let handle = server.handle();
    let serving = actix_web::rt::spawn(server);

    match log_in(&provider, token_count).await {
        Ok(tokens) => {
            for token in tokens {
                println!("TOKEN={token}");
            }
            println!("READY");
        }
        Err(e) => {
            handle.stop(false).await;
            support::exit_with(format!("the login through {base_url} failed: {e}"));
        }
    }

    let served = serving
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    fake.stop();
    served
}
