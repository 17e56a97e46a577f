//! Code shared by the examples: a tiny MCP server with two tools (`whoami`, and `admin_echo`,
//! which needs the extra scope `mcp:admin` when `MCP_AUTH_TOOL_SCOPES` says so), the rmcp-actix-web
//! transport around it, tracing setup, the listen address, and (for the proxy-mode examples)
//! opening the store and serving a [`WorkOsProvider`](actix_mcp_auth::WorkOsProvider).
//!
//! Each example pulls this in with `mod support;`. Not every example uses every item, hence the
//! `#[allow(dead_code)]` on the items that some examples leave unused.

use std::{sync::Arc, time::Duration};

use actix_mcp_auth::{
    AdminApi, Authenticated, AuthenticatedExt, WorkOsProvider,
    access_log::RedactingRootSpanBuilder,
    store::{Keyring, Store, StoreOptions},
};
use actix_web::{App, HttpServer, dev::Service as _, web};
use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    handler::server::wrapper::Parameters,
    model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig},
    service::RequestContext,
    tool, tool_handler, tool_router,
};
use rmcp_actix_web::transport::{
    LocalSessionManager, StreamableHttpService, on_request_extensions,
};
use tracing_actix_web::TracingLogger;

/// How long a client may take to send a request's head (line and headers) before the server
/// answers 408 and closes: `HttpServer::client_request_timeout`. Set in every example.
pub const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a closing connection may linger before it is dropped:
/// `HttpServer::client_disconnect_timeout`. Set in every example.
pub const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a client may take to send a request body (actix has no such timeout of its own):
/// `actix_mcp_auth::body_deadline::set_body_deadline`, applied by [`with_body_deadline`].
pub const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// Applies [`BODY_DEADLINE`] to a request; use as `App::wrap_fn(|req, srv| srv.call(with_body_deadline(req)))`.
#[allow(dead_code)]
pub fn with_body_deadline(
    mut req: actix_web::dev::ServiceRequest,
) -> actix_web::dev::ServiceRequest {
    actix_mcp_auth::body_deadline::set_body_deadline(&mut req, BODY_DEADLINE);
    req
}

/// Host names that always reach a server started on this machine.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The arguments of `admin_echo`.
// Through rmcp's re-export: the loadtest crate compiles this module without its own serde.
#[derive(Debug, rmcp::serde::Deserialize, schemars::JsonSchema)]
#[serde(crate = "rmcp::serde")]
pub struct EchoArgs {
    /// The text to send back.
    pub text: String,
}

/// The MCP server of the examples: `whoami`, that echoes the verified caller, and
/// `admin_echo`, the tool that needs an extra scope.
#[derive(Clone, Debug, Default)]
pub struct WhoAmIServer;

#[tool_router]
impl WhoAmIServer {
    pub fn new() -> Self {
        Self
    }

    /// Returns the caller as `BearerAuth` saw it, as a JSON object: `sub` at the top level (what
    /// MCP clients and scripts look for first), and beside it `subject` (the same value),
    /// `client_id`, `scopes`, `expires_at` and `claims` (every claim of the token, or the
    /// user's profile in proxy mode).
    #[tool(
        description = "Return the authenticated caller as JSON: sub, subject, client_id, \
                          scopes, expires_at and all token claims"
    )]
    async fn whoami(&self, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, McpError> {
        let caller = on_request_extensions(&ctx.extensions)
            .and_then(|extensions| extensions.get::<Authenticated>())
            .ok_or_else(|| {
                McpError::invalid_request(
                    "no authenticated caller: this endpoint is not behind BearerAuth",
                    None,
                )
            })?;
        let json = serde_json::to_string_pretty(&caller_json(caller))
            .map_err(|e| McpError::internal_error(format!("serializing caller: {e}"), None))?;
        Ok(CallToolResult::success(vec![ContentBlock::text(json)]))
    }

    /// Echoes `text`. The bearer check lets the call through only when the token holds the
    /// scopes `MCP_AUTH_TOOL_SCOPES` names for it: with `tools/call:admin_echo=mcp:admin`, a
    /// token without `mcp:admin` gets 403 `insufficient_scope` and a real client steps up (asks
    /// for `mcp:admin` and retries); unset, any valid token may call it.
    #[tool(description = "Echo `text` back; needs the mcp:admin scope when \
                          MCP_AUTH_TOOL_SCOPES=tools/call:admin_echo=mcp:admin")]
    async fn admin_echo(
        &self,
        Parameters(EchoArgs { text }): Parameters<EchoArgs>,
    ) -> Result<CallToolResult, McpError> {
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
    }
}

/// What `whoami` answers: `sub` at the top level, then the whole [`Authenticated`] (`subject`,
/// `client_id`, `scopes`, `expires_at`, `claims`).
fn caller_json(caller: &Authenticated) -> serde_json::Value {
    serde_json::json!({
        "sub": caller.subject(),
        "subject": caller.subject(),
        "client_id": caller.client_id(),
        "scopes": caller.scopes(),
        "expires_at": caller.expires_at(),
        "claims": caller.claims(),
    })
}

#[tool_handler]
impl ServerHandler for WhoAmIServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "actix-mcp-auth-example",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Call `whoami` to see who the MCP server thinks you are; `admin_echo` may need \
                 the mcp:admin scope.",
            )
    }
}

/// The rmcp-actix-web transport serving [`WhoAmIServer`].
///
/// Stateless (no `Mcp-Session-Id`, every POST stands alone) and answering plain JSON, which
/// suits a server behind bearer auth and is easy to drive with curl or wrk. The verified
/// [`Authenticated`] that `BearerAuth` stored in the actix request is copied into the MCP
/// request context by the `on_request` hook, where `whoami` reads it.
///
/// `allowed_hosts` is the DNS-rebinding guard of rmcp (checked against the `Host` header);
/// build it with [`allowed_hosts`]. An empty list would disable the check.
///
/// Mount it with `web::scope("/mcp").wrap(..).service(mcp_service(..).scope())`; clone it
/// into the `HttpServer::new` closure (it is cheap: a few `Arc`s).
pub fn mcp_service(allowed_hosts: Vec<String>) -> StreamableHttpService<WhoAmIServer> {
    assert!(
        !allowed_hosts.is_empty(),
        "an empty allowed_hosts list would disable rmcp's Host check"
    );
    StreamableHttpService::builder()
        .service_factory(Arc::new(|| Ok(WhoAmIServer::new())))
        .session_manager(Arc::new(LocalSessionManager::default()))
        .stateful_mode(false)
        .json_response(true)
        .allowed_hosts(allowed_hosts)
        .on_request_fn(|req, extensions| {
            if let Some(caller) = req.authenticated() {
                extensions.insert(caller);
            }
        })
        .build()
}

/// `Host` header values the MCP endpoint accepts: the host of the public base URL (bare, which
/// rmcp matches on any port, and as `host:port` when the URL has an explicit port) plus the
/// loopback names, so that local curl and benchmark runs work whatever the base URL says.
pub fn allowed_hosts(base_host: Option<&str>, base_port: Option<u16>) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    if let Some(host) = base_host {
        // rmcp compares hosts without IPv6 brackets.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        hosts.push(bare.to_ascii_lowercase());
        if let Some(port) = base_port {
            hosts.push(format!("{}:{port}", host.to_ascii_lowercase()));
        }
    }
    for loopback in LOOPBACK_HOSTS {
        if !hosts.iter().any(|h| h == loopback) {
            hosts.push(loopback.to_owned());
        }
    }
    hosts
}

/// Installs a `tracing` subscriber printing to stderr. `RUST_LOG` overrides the default
/// `info,rmcp=warn` (rmcp logs two `info` lines per stateless request).
///
/// Spans are logged when they close, so the per-request span of
/// `tracing_actix_web::TracingLogger` shows up as one access-log line with its timing.
pub fn init_tracing() {
    use tracing_subscriber::{EnvFilter, fmt::format::FmtSpan};
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::CLOSE)
        .with_writer(std::io::stderr)
        .init();
}

/// The access log of the examples: one line per request, whose target is logged through
/// `actix_mcp_auth::access_log::redact_target` (the callback's `code` and `state`, or a token
/// put in a query string, never reach the log).
#[allow(dead_code)]
pub fn access_log() -> TracingLogger<RedactingRootSpanBuilder> {
    TracingLogger::new()
}

/// Where to listen: `MCP_HOST` (default `127.0.0.1`) and `MCP_PORT` (default `8000`).
///
/// Exits the process with a message naming the variable when `MCP_PORT` is not a port number.
pub fn listen_addr() -> (String, u16) {
    let host = std::env::var("MCP_HOST")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    let port = match std::env::var("MCP_PORT") {
        Ok(raw) if !raw.trim().is_empty() => match raw.trim().parse::<u16>() {
            Ok(port) => port,
            Err(e) => {
                eprintln!("error: MCP_PORT must be a TCP port number (0-65535), got {raw:?}: {e}");
                std::process::exit(1);
            }
        },
        _ => 8000,
    };
    (host, port)
}

/// `GET /healthz`: an unprotected liveness probe.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Prints `error: {message}` to stderr and exits with status 1: how the examples report
/// configuration and start-up errors (never a panic).
#[allow(dead_code)]
pub fn exit_with(message: impl std::fmt::Display) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}

/// Opens the proxy-mode store at `url` (pool settings from `MCP_AUTH_DB_MAX_CONNECTIONS` and
/// `MCP_AUTH_DB_ACQUIRE_TIMEOUT_SECONDS`) and applies the migrations. The sweeper of expired
/// rows is started by the caller once the provider is built (`Store::spawn_sweeper`).
///
/// Exits the process with a message on failure. The URL is never printed: it may hold a
/// password.
#[allow(dead_code)]
pub async fn open_store(url: &str, keys: Keyring) -> Store {
    let options = StoreOptions::from_env().unwrap_or_else(|e| exit_with(e));
    let store = match Store::connect_with(url, keys, options).await {
        Ok(store) => store,
        Err(e) => exit_with(format!("cannot open the database (DATABASE_URL): {e}")),
    };
    if let Err(e) = store.migrate().await {
        exit_with(format!("cannot apply the database migrations: {e}"));
    }
    store
}

/// A proxy-mode server bound to `host:port`: the OAuth endpoints and discovery documents of
/// `provider` (below the base URL's path; the well-known documents at the host root),
/// `GET /healthz`, and the `whoami` MCP service (stateless) under `provider.mcp_path()` behind
/// `provider.bearer()`, with an access log. Await it to serve until Ctrl-C.
///
/// Exits the process with a message when the address cannot be bound.
#[allow(dead_code)]
pub fn proxy_server(
    provider: WorkOsProvider,
    admin: Option<AdminApi>,
    host: &str,
    port: u16,
) -> actix_web::dev::Server {
    let base = url::Url::parse(provider.issuer()).ok();
    let mcp = mcp_service(allowed_hosts(
        base.as_ref().and_then(|url| url.host_str()),
        base.as_ref().and_then(|url| url.port()),
    ));
    let server = HttpServer::new(move || {
        let app = App::new()
            .wrap_fn(|req, srv| srv.call(with_body_deadline(req)))
            .wrap(access_log())
            .route("/healthz", web::get().to(healthz))
            // The OAuth endpoints first: they are single resources, while the MCP scope would
            // catch every path below the base URL if MCP_PATH were empty.
            .service(provider.routes())
            // Where a user sees and revokes the apps they connected (their own AuthKit sign-in).
            .service(provider.connected_apps());
        // The admin API only when configured (MCP_AUTH_ADMIN_TOKEN), before the MCP scope.
        let app = match &admin {
            Some(admin) => app.service(admin.scope("/admin")),
            None => app,
        };
        app.service(
            web::scope(provider.mcp_path())
                .wrap(provider.bearer())
                .service(mcp.clone().scope()),
        )
    })
    .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
    .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT);
    match server.bind((host, port)) {
        Ok(server) => server.run(),
        Err(e) => exit_with(format!(
            "cannot listen on {host}:{port} ({e}); choose another MCP_HOST / MCP_PORT"
        )),
    }
}
