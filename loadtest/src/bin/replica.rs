//! **FOR LOAD AND FAULT TESTS ONLY — DO NOT DEPLOY.** One replica of a proxy-mode server
//! (`WorkOsProvider`) configured entirely from the environment, so that several processes can
//! share one database, one encryption key and one (emulated) AuthKit, plus the standalone AuthKit
//! emulator those replicas share.
//!
//! ```sh
//! cargo run --release -p actix-mcp-auth-loadtest --bin replica -- fake-authkit   # the shared emulator
//! cargo run --release -p actix-mcp-auth-loadtest --bin replica                   # a replica (same as `-- serve`)
//! ```
//!
//! # `fake-authkit`: the shared AuthKit emulator
//!
//! Starts `testing::FakeAuthKit` on `127.0.0.1` (random port), registers on it the WorkOS
//! Connect application `WORKOS_CLIENT_ID` / `WORKOS_CLIENT_SECRET` with the redirect URIs in
//! `FAKE_REDIRECT_URIS` (comma-separated; the replicas' public `MCP_BASE_URL` +
//! `/auth/callback`), and starts a small **unauthenticated** control server on another random
//! port. `FAKE_ACCESS_TOKEN_TTL_SECONDS` sets the lifetime of the access tokens it issues
//! (default 300, as AuthKit's). It prints to stdout, one per line:
//!
//! ```text
//! WORKOS_AUTHKIT_DOMAIN=http://127.0.0.1:PORT
//! FAKE_CONTROL_URL=http://127.0.0.1:PORT2
//! READY
//! ```
//!
//! and serves until killed. The control server (plain HTTP/1.1, one request per connection):
//!
//! | request | effect |
//! | --- | --- |
//! | `GET /counters` | JSON: requests received per emulator endpoint (`userinfo`, `token`, `authorize`, `jwks`, `register`) |
//! | `POST /failure/none` | normal service |
//! | `POST /failure/server_error` | every endpoint answers 500 |
//! | `POST /failure/slow/<ms>` | every answer is delayed by `<ms>` milliseconds |
//! | `POST /failure/down` | the emulator stops listening (connections refused) until another failure is set |
//! | `POST /reset` | counters back to zero |
//!
//! # `serve` (default): one replica
//!
//! `WorkOsProviderBuilder::from_env` (so `WORKOS_CLIENT_ID`, `WORKOS_CLIENT_SECRET`,
//! `WORKOS_AUTHKIT_DOMAIN`, `MCP_BASE_URL`, `MCP_PATH`, every `MCP_AUTH_*` variable including
//! `MCP_AUTH_RATE_LIMITS=off`), `MCP_AUTH_ENCRYPTION_KEYS` (required: replicas must share it),
//! `DATABASE_URL` (required), `MCP_HOST` / `MCP_PORT` (where this replica listens; every replica
//! has the same public `MCP_BASE_URL` but its own port). It migrates the database, then serves
//!
//! * the OAuth endpoints and discovery documents, `GET /healthz`;
//! * `MCP_PATH` (default `/mcp`): the `whoami` MCP service behind proxy-mode bearer auth;
//! * `/open` + `MCP_PATH`: **the same MCP service without any authentication** (the baseline
//!   of load tests);
//! * `GET /bench/stats`: **unauthenticated** JSON with the process id, the number of tokens in
//!   the verified-token cache and the resident memory (`VmRSS`, KiB).
//!
//! It prints `PID=<pid>` and `READY` once listening. Used by `scripts/fault-replica-kill.sh`
//! and `scripts/load-replicas.sh`; `loadtest/src/bin/flow_driver.rs` logs in through replicas.

use actix_mcp_auth_loadtest::support;

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::Duration;

use actix_mcp_auth::{WorkOsProviderBuilder, store::Keyring};
use actix_mcp_auth_testing::{Endpoint, Failure, FakeAuthKit};
use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::json;

/// Prefix of the unprotected copy of the MCP endpoint.
const OPEN_PREFIX: &str = "/open";

fn env_var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

fn required(name: &str) -> String {
    env_var(name).unwrap_or_else(|| support::exit_with(format!("{name} is required")))
}

fn main() -> std::io::Result<()> {
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => actix_web::rt::System::new().block_on(serve()),
        Some("fake-authkit") => fake_authkit(),
        Some(other) => support::exit_with(format!(
            "unknown command {other:?}; use `serve` (default) or `fake-authkit`"
        )),
    }
}

// ---- the shared emulator --------------------------------------------------------------------

fn fake_authkit() -> std::io::Result<()> {
    let client_id = required("WORKOS_CLIENT_ID");
    let client_secret = required("WORKOS_CLIENT_SECRET");
    let redirects = required("FAKE_REDIRECT_URIS");
    let redirects: Vec<&str> = redirects
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();

    let fake = FakeAuthKit::start();
    if let Ok(ttl) = std::env::var("FAKE_ACCESS_TOKEN_TTL_SECONDS") {
        let ttl: u64 = ttl.parse().unwrap_or_else(|_| {
            eprintln!("error: FAKE_ACCESS_TOKEN_TTL_SECONDS must be a number of seconds");
            std::process::exit(2);
        });
        fake.set_access_token_ttl(Duration::from_secs(ttl));
    }
    fake.register_connect_app(&client_id, &client_secret, &redirects);
    let control = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    println!("WORKOS_AUTHKIT_DOMAIN={}", fake.issuer());
    println!("FAKE_CONTROL_URL=http://{}", control.local_addr()?);
    println!("READY");
    std::io::stdout().flush()?;
    eprintln!(
        "FakeAuthKit at {} (Connect app {client_id}, redirect URIs {redirects:?}); \
         UNAUTHENTICATED control server at http://{}",
        fake.issuer(),
        control.local_addr()?
    );
    for stream in control.incoming() {
        match stream {
            Ok(stream) => {
                if let Err(e) = control_request(&fake, stream) {
                    eprintln!("control request failed: {e}");
                }
            }
            Err(e) => eprintln!("control accept failed: {e}"),
        }
    }
    Ok(())
}

/// Answers one request of the control server, then closes the connection.
fn control_request(fake: &FakeAuthKit, stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Skip the headers (no control request has a body that matters).
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body) = match (method, path) {
        ("GET", "/counters") => (
            "200 OK",
            json!({
                "userinfo": fake.calls(Endpoint::UserInfo),
                "token": fake.calls(Endpoint::Token),
                "authorize": fake.calls(Endpoint::Authorize),
                "jwks": fake.calls(Endpoint::Jwks),
                "register": fake.calls(Endpoint::Register),
            })
            .to_string(),
        ),
        ("POST", "/reset") => {
            fake.reset_calls();
            ("200 OK", json!({"ok": true}).to_string())
        }
        ("POST", failure) if failure.starts_with("/failure/") => {
            let name = &failure["/failure/".len()..];
            let parsed = match name {
                "none" => Some(Failure::None),
                "server_error" => Some(Failure::ServerError),
                "down" => Some(Failure::Down),
                slow => slow
                    .strip_prefix("slow/")
                    .and_then(|ms| ms.parse::<u64>().ok())
                    .map(|ms| Failure::Slow(Duration::from_millis(ms))),
            };
            match parsed {
                Some(failure) => {
                    eprintln!("failure set to {failure:?}");
                    fake.set_failure(failure);
                    ("200 OK", json!({"failure": name}).to_string())
                }
                None => (
                    "404 Not Found",
                    json!({"error": "unknown failure"}).to_string(),
                ),
            }
        }
        _ => ("404 Not Found", json!({"error": "not found"}).to_string()),
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

// ---- one replica ----------------------------------------------------------------------------

/// Resident memory of this process in KiB (`VmRSS` of `/proc/self/status`), if readable.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

async fn serve() -> std::io::Result<()> {
    support::init_tracing();
    let (host, port) = support::listen_addr();
    let config = match WorkOsProviderBuilder::from_env() {
        Ok(config) => config,
        Err(e) => support::exit_with(e),
    };
    let keys = match Keyring::from_env() {
        Ok(keys) => keys,
        Err(e) => support::exit_with(format!("{e} (replicas must share the key)")),
    };
    let database_url = required("DATABASE_URL");
    let store = support::open_store(&database_url, keys).await;
    let provider = match config.build(store) {
        Ok(provider) => provider,
        Err(e) => support::exit_with(e),
    };
    // Building the provider starts nothing in the background: delete expired OAuth state every
    // MCP_AUTH_SWEEP_INTERVAL_SECONDS while the server runs (dropping the handle stops it).
    let _sweeper = provider
        .store()
        .spawn_sweeper(provider.sweep_interval(), 500);

    let base = url::Url::parse(provider.issuer()).ok();
    let mcp = support::mcp_service(support::allowed_hosts(
        base.as_ref().and_then(|url| url.host_str()),
        base.as_ref().and_then(|url| url.port()),
    ));
    let open_path = format!("{OPEN_PREFIX}{}", provider.mcp_path());
    tracing::warn!(path = %open_path, "replica serves an UNAUTHENTICATED MCP endpoint and /bench/stats; never deploy it");

    let server_provider = provider.clone();
    let server = HttpServer::new(move || {
        let provider = server_provider.clone();
        let stats = move || {
            let body = json!({
                "pid": std::process::id(),
                "cached_tokens": provider.cached_tokens(),
                "rss_kib": rss_kib(),
            });
            async move { HttpResponse::Ok().json(body) }
        };
        App::new()
            .route("/healthz", web::get().to(support::healthz))
            .route("/bench/stats", web::get().to(stats))
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
    println!(
        "replica of {} listening on {host}:{port}",
        provider.resource_url()
    );
    println!("PID={}", std::process::id());
    println!("READY");
    std::io::stdout().flush()?;
    server.await
}
