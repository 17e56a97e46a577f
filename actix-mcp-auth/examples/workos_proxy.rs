//! An MCP server in **proxy mode**: this server is the OAuth 2.1 authorization server MCP clients
//! see, in front of a WorkOS Connect OAuth application (AuthKit).
//!
//! Use it when your WorkOS application does not offer dynamic client registration to MCP
//! clients. MCP clients register with this server (`POST /register`), start their login at
//! `/authorize`, approve the client on this server's consent page, sign in at AuthKit, and
//! receive this server's own opaque tokens. AuthKit's tokens never leave the server: they are
//! encrypted (AES-256-GCM) in the database and only used to check that the user's AuthKit
//! session is still alive and to refresh it.
//!
//! The MCP server has two tools: `whoami`, which returns the verified caller (JSON, `sub` at the
//! top level), and `admin_echo`, which echoes its `text` and, with
//! `MCP_AUTH_TOOL_SCOPES=tools/call:admin_echo=mcp:admin`, needs the scope `mcp:admin`: a client
//! whose token lacks it gets 403 `insufficient_scope`, logs in again asking for it (a new
//! consent), and retries. Everything under `MCP_PATH` requires one of our access tokens. The OAuth
//! endpoints (`/register`, `/authorize`, `/consent`, `WORKOS_REDIRECT_PATH`, `/token`,
//! `/revoke`) live at the base URL (below its path, if it has one), the discovery documents
//! under `/.well-known/` at the host root, and `GET /healthz` is open. A signed-in user sees and
//! revokes the apps they connected at `/connected-apps` (its own AuthKit sign-in).
//!
//! No WorkOS account at hand? `cargo run --example quickstart` runs the same server against a
//! local AuthKit emulator.
//!
//! # Environment (a `.env` file in the working directory is read too)
//!
//! | variable | meaning |
//! | --- | --- |
//! | `WORKOS_CLIENT_ID` | required: client id of the WorkOS Connect OAuth application |
//! | `WORKOS_CLIENT_SECRET` | required: its client secret |
//! | `WORKOS_AUTHKIT_DOMAIN` | required: your AuthKit domain, e.g. `https://your-app.authkit.app` |
//! | `MCP_BASE_URL` | required: public base URL of this server, e.g. `https://mcp.example.com` (our OAuth issuer; plain `http` only on loopback). It may have a path (`https://example.com/api`): every route is then served below it, and a reverse proxy in front must not strip it |
//! | `MCP_PATH` | where the MCP endpoint lives, default `/mcp` |
//! | `WORKOS_REDIRECT_PATH` | our callback path, default `/auth/callback` |
//! | `WORKOS_REQUIRED_SCOPES` | optional, space-separated scopes every token carries |
//! | `MCP_AUTH_TOOL_SCOPES` | optional per-tool scopes; `tools/call:admin_echo=mcp:admin` makes the second tool, `admin_echo`, need `mcp:admin` (a token without it gets 403 `insufficient_scope` and the client steps up) |
//! | `WORKOS_TIMEOUT_SECONDS` | timeout of each call to AuthKit, default 10 |
//! | `WORKOS_ALLOWED_CLIENT_REDIRECT_URIS` | optional patterns the redirect URIs of MCP clients must match, e.g. `http://localhost:*/* http://127.0.0.1:*/* https://claude.ai/api/mcp/auth_callback`; default: any https URI and loopback http |
//! | `WORKOS_ALLOWED_CLIENT_REDIRECT_SCHEMES` | optional private-use schemes MCP clients may register redirect URIs with, e.g. `cursor vscode` |
//! | `DATABASE_URL` | where the OAuth state lives, default `sqlite://mcp-auth.db?mode=rwc` (created when missing); `postgres://user:pass@host/db` for several replicas |
//! | `MCP_AUTH_ENCRYPTION_KEYS` | required: base64 AES-256 key(s) sealing AuthKit's tokens, comma-separated, newest first; make one with `openssl rand -base64 32` |
//! | `MCP_HOST` / `MCP_PORT` | address to listen on, default `127.0.0.1` / `8000` |
//! | `RUST_LOG` | log filter, default `info,rmcp=warn` |
//! | `MCP_AUTH_CIMD` | `on` (default) or `off`: accept client ids that are metadata-document URLs (CIMD) |
//! | `MCP_AUTH_CIMD_ALLOW_LOOPBACK` | development and tests only: `1` also accepts and fetches loopback client id URLs (`http` too) |
//! | `MCP_AUTH_CIMD_EXTRA_CA_FILE` | development and tests only: PEM certificates the metadata-document fetcher also trusts |
//! | `MCP_AUTH_ALLOWED_EMAIL_DOMAINS` | optional: only users with an email of these domains log in, e.g. `example.com` (exact, no subdomains); others get `access_denied` saying why |
//! | `MCP_AUTH_ALLOWED_ORGANIZATIONS` | optional: only users signed in to these WorkOS organizations log in, e.g. `org_01H...` |
//! | `MCP_AUTH_ADMIN_TOKEN` | optional: mounts the JSON admin API (grants, audit log) at `/admin`, behind `Authorization: Bearer <this value>`; at least 32 characters, e.g. `openssl rand -base64 32` |
//!
//! Token lifetimes, caches and the sweeper of expired rows have their own variables
//! (`MCP_AUTH_ACCESS_TOKEN_TTL_SECONDS`, `MCP_AUTH_SWEEP_INTERVAL_SECONDS`, ...), see
//! `WorkOsProviderBuilder::from_env`. Migrations run at every start (they are idempotent). Keep `MCP_AUTH_ENCRYPTION_KEYS` stable: with a
//! new key, the sessions stored under the old one can no longer be refreshed and users log in
//! again. To rotate, put the new key first and keep the old one after it for a while.
//!
//! # Setting up the WorkOS Connect application
//!
//! 1. In the WorkOS dashboard, create an OAuth application under *Connect* (a confidential,
//!    "third-party" or "first-party" OAuth app with a client secret).
//! 2. Add the redirect URI `MCP_BASE_URL` + `WORKOS_REDIRECT_PATH`, with the defaults e.g.
//!    `http://127.0.0.1:8000/auth/callback` locally or `https://mcp.example.com/auth/callback`
//!    in production. It must match exactly.
//! 3. Copy the client id and secret into `WORKOS_CLIENT_ID` and `WORKOS_CLIENT_SECRET`, and your
//!    AuthKit domain (*Authentication > AuthKit*) into `WORKOS_AUTHKIT_DOMAIN`.
//!
//! # Running
//!
//! ```sh
//! cat > .env <<EOF
//! WORKOS_CLIENT_ID=client_...
//! WORKOS_CLIENT_SECRET=sk_...
//! WORKOS_AUTHKIT_DOMAIN=https://your-app.authkit.app
//! MCP_BASE_URL=http://127.0.0.1:8000
//! MCP_AUTH_ENCRYPTION_KEYS=$(openssl rand -base64 32)
//! EOF
//! cargo run --example workos_proxy
//! ```
//!
//! Then connect an MCP client to `http://127.0.0.1:8000/mcp` (Streamable HTTP), e.g.
//! `npx @modelcontextprotocol/inspector` or
//! `claude mcp add --transport http workos http://127.0.0.1:8000/mcp`: it gets a `401`, finds
//! this server in the discovery documents, registers, and opens the browser for the login.
//! `scripts/quickstart-flow.sh` walks the same flow with curl (against a server whose identity
//! provider logs users in without a browser, such as the quickstart).

mod support;

use actix_mcp_auth::{
    AdminApi, WorkOsProviderBuilder,
    store::{ENCRYPTION_KEYS_VAR, Keyring},
};

/// The database used when `DATABASE_URL` is not set: a SQLite file in the working directory,
/// created when missing.
const DEFAULT_DATABASE_URL: &str = "sqlite://mcp-auth.db?mode=rwc";

/// Setting it mounts the admin API at `/admin`.
const ADMIN_TOKEN_VAR: &str = "MCP_AUTH_ADMIN_TOKEN";

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    dotenvy::dotenv().ok();
    support::init_tracing();

    // Read the WorkOS settings before opening the database, so a missing variable is reported
    // without creating a database file (the URLs are checked by `build`).
    let config = match WorkOsProviderBuilder::from_env() {
        Ok(config) => config,
        Err(e) => support::exit_with(e),
    };
    let keys = match Keyring::from_env() {
        Ok(keys) => keys,
        Err(e) => support::exit_with(format!(
            "{e}\n\n{ENCRYPTION_KEYS_VAR} holds the AES-256 key(s) that encrypt AuthKit's tokens \
             in the database: one or more base64-encoded 32-byte keys, comma-separated, newest \
             first. Make one with `openssl rand -base64 32` and keep it in the environment or \
             in .env, e.g.\n\n    echo \"{ENCRYPTION_KEYS_VAR}=$(openssl rand -base64 32)\" >> .env\n\n\
             Keep the key: what it sealed can only be read with it."
        )),
    };
    let (host, port) = support::listen_addr();
    let database_url = std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());

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

    // The admin API (grants and audit log, JSON) only when its secret is configured.
    let admin = std::env::var_os(ADMIN_TOKEN_VAR)
        .map(|_| AdminApi::from_env(provider.grants()).unwrap_or_else(|e| support::exit_with(e)));
    let admin_enabled = admin.is_some();

    let resource_url = provider.resource_url().to_owned();
    let issuer = provider.issuer().to_owned();
    let server = support::proxy_server(provider, admin, &host, port);
    println!("MCP endpoint: {resource_url}");
    println!("OAuth issuer: {issuer}");
    println!(
        "redirect URI of the WorkOS application: {issuer}{}",
        redirect_path()
    );
    println!("connected apps (users revoke their grants): {issuer}/connected-apps");
    if admin_enabled {
        println!("admin API: /admin on this server (Authorization: Bearer ${ADMIN_TOKEN_VAR})");
    }
    println!("listening on {host}:{port} (GET /healthz is open)");

    server.await
}

/// `WORKOS_REDIRECT_PATH` as the provider normalizes it (default `/auth/callback`): one leading
/// slash, no trailing slash.
fn redirect_path() -> String {
    let configured = std::env::var("WORKOS_REDIRECT_PATH").unwrap_or_default();
    let path = configured.trim().trim_matches('/');
    if path.is_empty() {
        "/auth/callback".to_owned()
    } else {
        format!("/{path}")
    }
}
