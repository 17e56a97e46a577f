//! An MCP server protected by WorkOS AuthKit, on actix-web.
//!
//! The server has two MCP tools: `whoami`, which returns the verified caller as JSON (`sub` at
//! the top level, `subject`, `client_id`, `scopes`, `expires_at` and all token `claims`), and
//! `admin_echo`, which echoes its `text` and, with `MCP_AUTH_TOOL_SCOPES` set as below, needs
//! the extra AuthKit scope `mcp:admin` (per-tool scopes: a token without it gets 403
//! `insufficient_scope` naming the scopes to ask for). Everything under `MCP_PATH` requires an AuthKit access token; the OAuth discovery documents
//! MCP clients need (`/.well-known/...`) are served at the host root, and `GET /healthz` is
//! open.
//!
//! # Environment (a `.env` file in the working directory is read too)
//!
//! | variable | meaning |
//! | --- | --- |
//! | `WORKOS_AUTHKIT_DOMAIN` | required: your AuthKit domain, e.g. `https://your-app.authkit.app` |
//! | `MCP_BASE_URL` | required: public base URL of this server, e.g. `http://127.0.0.1:8000` (tokens must name `MCP_BASE_URL` + `MCP_PATH` as audience) |
//! | `MCP_PATH` | where the MCP endpoint lives, default `/mcp` |
//! | `WORKOS_REQUIRED_SCOPES` | optional, space-separated scopes every token must carry |
//! | `WORKOS_JWKS_URI` | optional, overrides the JWKS URL derived from the AuthKit domain |
//! | `MCP_AUTH_TOOL_SCOPES` | optional per-tool scopes; `tools/call:admin_echo=mcp:admin` makes the second tool, `admin_echo`, need `mcp:admin` (a token without it gets 403 `insufficient_scope` and the client steps up) |
//! | `MCP_HOST` / `MCP_PORT` | address to listen on, default `127.0.0.1` / `8000` |
//! | `RUST_LOG` | log filter, default `info` |
//!
//! # Running
//!
//! ```sh
//! WORKOS_AUTHKIT_DOMAIN=https://your-app.authkit.app MCP_BASE_URL=http://127.0.0.1:8000 \
//!     cargo run --example authkit
//! ```
//!
//! Then point an MCP client (e.g. `npx @modelcontextprotocol/inspector`) at
//! `http://127.0.0.1:8000/mcp`; it discovers AuthKit from the `401` and signs you in.
//!
//! # Without a WorkOS account
//!
//! `cargo run --example fake_authkit` starts a local AuthKit emulator and prints the
//! `WORKOS_AUTHKIT_DOMAIN` to use and a ready-made access token (its output is valid `.env`
//! syntax, so `cargo run --example fake_authkit > .env` also works while it runs):
//!
//! ```sh
//! cargo run --example fake_authkit            # terminal 1: prints WORKOS_AUTHKIT_DOMAIN=... and TOKEN=...
//! WORKOS_AUTHKIT_DOMAIN=http://127.0.0.1:PORT MCP_BASE_URL=http://127.0.0.1:8000 \
//!     cargo run --example authkit                 # terminal 2
//!
//! # terminal 3: no token -> 401 with WWW-Authenticate: Bearer resource_metadata="..."
//! curl -i -X POST http://127.0.0.1:8000/mcp
//! # with the token -> the whoami tool answers with your claims
//! curl -s http://127.0.0.1:8000/mcp \
//!     -H "Authorization: Bearer $TOKEN" \
//!     -H 'Content-Type: application/json' \
//!     -H 'Accept: application/json, text/event-stream' \
//!     -H 'MCP-Protocol-Version: 2025-06-18' \
//!     -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}'
//! ```

mod support;

use actix_mcp_auth::AuthKitProvider;
use actix_web::{App, HttpServer, dev::Service as _, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    dotenvy::dotenv().ok();
    support::init_tracing();

    let provider = match AuthKitProvider::from_env() {
        Ok(provider) => provider,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let (host, port) = support::listen_addr();
    let base = provider.base_url();
    let mcp = support::mcp_service(support::allowed_hosts(base.host_str(), base.port()));

    println!("MCP endpoint: {}", provider.resource_url());
    println!("listening on {host}:{port} (GET /healthz is open)");

    HttpServer::new(move || {
        App::new()
            .wrap_fn(|req, srv| srv.call(support::with_body_deadline(req)))
            .wrap(support::access_log())
            .route("/healthz", web::get().to(support::healthz))
            .service(
                web::scope(provider.mcp_path())
                    .wrap(provider.bearer())
                    .service(mcp.clone().scope()),
            )
            // The well-known discovery routes, at the host root.
            .service(provider.routes())
    })
    .client_request_timeout(support::CLIENT_REQUEST_TIMEOUT)
    .client_disconnect_timeout(support::CLIENT_DISCONNECT_TIMEOUT)
    .bind((host.as_str(), port))?
    .run()
    .await
}
