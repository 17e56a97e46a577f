//! **FOR BENCHMARKS ONLY — DO NOT DEPLOY.** Serves the MCP endpoint twice from one process:
//!
//! * `MCP_PATH` (default `/mcp`): behind AuthKit bearer auth, exactly as in the `authkit`
//!   example;
//! * `/open` + `MCP_PATH` (default `/open/mcp`): **the same MCP service with no authentication
//!   at all**, so that a load test can compare the two and measure what the bearer check costs.
//!
//! * `/plain` + `MCP_PATH` (default `/plain/mcp`): behind the same bearer check *without* the
//!   per-tool scope policy (`MCP_AUTH_TOOL_SCOPES`), the baseline of `scripts/wrk-tool-scopes.sh`.
//!
//! Anyone who can reach `/open/mcp` can call every tool without a token. It exists only as a
//! baseline for `scripts/wrk-authkit.sh`.
//!
//! Configuration is the same as the `authkit` example (`WORKOS_AUTHKIT_DOMAIN`, `MCP_BASE_URL`,
//! `MCP_PATH`, `WORKOS_REQUIRED_SCOPES`, `WORKOS_JWKS_URI`, `MCP_HOST`, `MCP_PORT`, `RUST_LOG`;
//! a `.env` file is read). No request logging middleware is installed, to keep the measurement
//! about auth; set `RUST_LOG=warn` to keep the library quiet too.
//!
//! ```sh
//! cargo run --release --example fake_authkit     # prints WORKOS_AUTHKIT_DOMAIN=... and TOKEN=...
//! WORKOS_AUTHKIT_DOMAIN=http://127.0.0.1:PORT MCP_BASE_URL=http://127.0.0.1:8000 \
//!     cargo run --release -p actix-mcp-auth-loadtest --bin bench_server
//! ```
//!
//! `scripts/wrk-authkit.sh` does all of this and runs `wrk` against both endpoints.

use actix_mcp_auth_loadtest::support;

use std::sync::Arc;

use actix_mcp_auth::{AuthKitProvider, BearerAuth};
use actix_web::{App, HttpServer, web};

/// Prefix of the unprotected copy of the MCP endpoint.
const OPEN_PREFIX: &str = "/open";
/// Prefix of the copy behind the bearer check without the per-tool scope policy.
const PLAIN_PREFIX: &str = "/plain";

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
    let open_path = format!("{OPEN_PREFIX}{}", provider.mcp_path());
    let plain_path = format!("{PLAIN_PREFIX}{}", provider.mcp_path());

    let open_url = {
        let resource = provider.resource_url();
        let origin = resource
            .strip_suffix(provider.mcp_path())
            .unwrap_or(resource);
        format!("{origin}{open_path}")
    };
    println!("protected MCP endpoint: {}", provider.resource_url());
    println!("UNPROTECTED MCP endpoint (benchmark baseline only!): {open_url}");
    println!("listening on {host}:{port} (GET /healthz is open)");
    tracing::warn!(path = %open_path, "bench_server serves an UNAUTHENTICATED MCP endpoint; never deploy it");

    HttpServer::new(move || {
        App::new()
            .route("/healthz", web::get().to(support::healthz))
            .service(
                web::scope(provider.mcp_path())
                    .wrap(provider.bearer())
                    .service(mcp.clone().scope()),
            )
            .service(web::scope(&open_path).service(mcp.clone().scope()))
            .service(
                web::scope(&plain_path)
                    .wrap(BearerAuth::new(
                        Arc::new(provider.verifier().clone()),
                        provider.resource_metadata_url(),
                    ))
                    .service(mcp.clone().scope()),
            )
            .service(provider.routes())
    })
    .client_request_timeout(support::CLIENT_REQUEST_TIMEOUT)
    .client_disconnect_timeout(support::CLIENT_DISCONNECT_TIMEOUT)
    .bind((host.as_str(), port))?
    .run()
    .await
}
