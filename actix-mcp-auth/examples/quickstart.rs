//! Try proxy mode in one command, without a WorkOS account or any credentials:
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! This is the `workos_proxy` example (this server is the OAuth 2.1 authorization server MCP
//! clients see, in front of a WorkOS Connect application) pointed at `FakeAuthKit`, a local
//! AuthKit emulator started in the same process. On start it
//!
//! * starts the emulator on `127.0.0.1` at a random port and registers a Connect OAuth
//!   application on it, with a freshly generated client id and secret and the redirect URI
//!   `MCP_BASE_URL` + `/auth/callback`;
//! * opens (and migrates) the SQLite file `quickstart.db` in the current directory, or
//!   `DATABASE_URL` when set;
//! * serves the OAuth endpoints, the discovery documents, `GET /healthz` and the MCP endpoint
//!   `MCP_BASE_URL` + `/mcp` with one tool, `whoami`, that returns the verified caller (a JSON
//!   object with `sub` at the top level);
//! * prints how to connect an MCP client.
//!
//! This server's own consent page is real: the browser shows it ("<client> wants to access your
//! Quickstart MCP account", what the client gets, where you will be sent) and you click
//! **Allow**; then the emulator signs you in without a password (always as `user_01TEST`).
//!
//! # Environment (all optional; no `.env` file is read)
//!
//! | variable | meaning |
//! | --- | --- |
//! | `MCP_HOST` / `MCP_PORT` | address to listen on, default `127.0.0.1` / `8000` |
//! | `MCP_BASE_URL` | public base URL, default `http://127.0.0.1:` + `MCP_PORT` |
//! | `MCP_PATH` | path of the MCP endpoint, default `/mcp` |
//! | `DATABASE_URL` | default `sqlite://quickstart.db` (created when missing) |
//! | `MCP_AUTH_ENCRYPTION_KEYS` | key(s) sealing the emulator's tokens in the database; default: a random key per run |
//! | `RUST_LOG` | log filter, default `info,rmcp=warn` |
//! | `MCP_AUTH_*` | the proxy settings of `workos_proxy` (e.g. `MCP_AUTH_CIMD_ALLOW_LOOPBACK=1` and `MCP_AUTH_CIMD_EXTRA_CA_FILE` to log in with a client id metadata document served on loopback) |
//!
//! # Connecting a client
//!
//! * MCP Inspector: `npx @modelcontextprotocol/inspector`, transport *Streamable HTTP*, URL
//!   `http://127.0.0.1:8000/mcp`, *Connect*;
//! * Claude Code: `claude mcp add --transport http quickstart http://127.0.0.1:8000/mcp`, then
//!   `/mcp` inside Claude Code to log in;
//! * no browser at all: `scripts/quickstart-flow.sh http://127.0.0.1:8000` registers a client,
//!   logs in, calls `whoami`, refreshes and revokes with curl.
//!
//! Each run starts a new emulator, so logins of earlier runs end: clients log in again.

mod support;

use actix_mcp_auth::{WorkOsProviderBuilder, store::Keyring};
use actix_mcp_auth_testing::FakeAuthKit;

/// The database used when `DATABASE_URL` is not set (`Store::connect` creates the file).
const DEFAULT_DATABASE_URL: &str = "sqlite://quickstart.db";
/// Our callback, registered as redirect URI of the emulated Connect application.
const REDIRECT_PATH: &str = "/auth/callback";
/// The user the emulator signs in.
const USER: &str = "user_01TEST";
/// This server's name on the consent page (`server_name`; `MCP_AUTH_SERVER_NAME` in the
/// `workos_proxy` example).
const SERVER_NAME: &str = "Quickstart MCP";

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

/// The default public base URL for the listen address: loopback when listening on every
/// interface (`0.0.0.0`, `::`), brackets around IPv6 addresses.
fn default_base_url(host: &str, port: u16) -> String {
    let host = match host {
        "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
        other => other,
    };
    if host.contains(':') && !host.starts_with('[') {
        format!("http://[{host}]:{port}")
    } else {
        format!("http://{host}:{port}")
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    support::init_tracing();
    let (host, port) = support::listen_addr();
    let base_url = env_var("MCP_BASE_URL").unwrap_or_else(|| default_base_url(&host, port));
    let mcp_path = std::env::var("MCP_PATH").unwrap_or_else(|_| "/mcp".to_owned());
    let database_url = env_var("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());

    // A random key per run is fine for a demo, but everything it sealed (the emulator's tokens
    // kept in the database) is unreadable after a restart: set MCP_AUTH_ENCRYPTION_KEYS to keep
    // stored sessions usable across restarts.
    let keys = if env_var("MCP_AUTH_ENCRYPTION_KEYS").is_some() {
        match Keyring::from_env() {
            Ok(keys) => keys,
            Err(e) => support::exit_with(format!(
                "{e} (generate a key with `openssl rand -base64 32`, or unset it to use a random \
                 key for this run)"
            )),
        }
    } else {
        Keyring::ephemeral()
    };

    // The emulated WorkOS AuthKit, with a Connect OAuth application for this server. It stops
    // when `fake` is dropped, at the end of `main`.
    let fake = FakeAuthKit::start();
    fake.set_current_user(USER);
    let client_id = format!("client_quickstart_{}", random_hex(8));
    let client_secret = format!("sk_quickstart_{}", random_hex(24));

    // The provider reads the environment like `workos_proxy` does (so every proxy variable,
    // e.g. `MCP_AUTH_CIMD_ALLOW_LOOPBACK`, works here too), with the emulator's values for the
    // WorkOS application and ours for the URLs.
    let ours = [
        ("WORKOS_CLIENT_ID", client_id.clone()),
        ("WORKOS_CLIENT_SECRET", client_secret.clone()),
        ("WORKOS_AUTHKIT_DOMAIN", fake.issuer().to_owned()),
        ("MCP_BASE_URL", base_url.clone()),
        ("MCP_PATH", mcp_path.clone()),
        ("WORKOS_REDIRECT_PATH", REDIRECT_PATH.to_owned()),
    ];
    let vars = std::env::vars()
        .filter(|(name, _)| !ours.iter().any(|(n, _)| n == name))
        .chain(ours.iter().map(|(n, v)| (n.to_string(), v.clone())));
    let builder = match WorkOsProviderBuilder::from_vars(vars) {
        Ok(builder) => builder,
        Err(e) => support::exit_with(e.to_string()),
    };
    let builder = builder.server_name(SERVER_NAME);

    let store = support::open_store(&database_url, keys).await;
    let provider = match builder.build(store) {
        Ok(provider) => provider,
        // Names the builder method; the variables behind them are in the table above.
        Err(e) => support::exit_with(format!("{e} (check MCP_BASE_URL and MCP_PATH)")),
    };
    // Building the provider starts nothing in the background: delete expired OAuth state every
    // MCP_AUTH_SWEEP_INTERVAL_SECONDS while the server runs (dropping the handle stops it).
    let _sweeper = provider
        .store()
        .spawn_sweeper(provider.sweep_interval(), 500);
    // The redirect URI exactly as the provider sends it to AuthKit: issuer + callback path.
    let callback = format!("{}{REDIRECT_PATH}", provider.issuer());
    fake.register_connect_app(&client_id, &client_secret, &[callback.as_str()]);

    let mcp_url = provider.resource_url().to_owned();
    let issuer = provider.issuer().to_owned();
    let server = support::proxy_server(provider, None, &host, port);
    println!(
        "\nactix-mcp-auth quickstart: proxy mode in front of a local, emulated WorkOS AuthKit\n\
         \n  MCP endpoint   {mcp_url}   (transport: Streamable HTTP)\
         \n  OAuth issuer   {issuer}\
         \n  fake AuthKit   {authkit}   (Connect app {client_id}, redirect URI {callback})\
         \n  database       {database}\
         \n  listening on   {host}:{port}\n\
         \nConnect an MCP client:\
         \n  MCP Inspector  npx @modelcontextprotocol/inspector\
         \n                 then Transport Type \"Streamable HTTP\", URL {mcp_url}, Connect\
         \n  Claude Code    claude mcp add --transport http quickstart {mcp_url}\
         \n                 then /mcp in Claude Code to authenticate\
         \n  curl only      scripts/quickstart-flow.sh {issuer}\n\
         \nThe client opens a browser at this server's consent page, \"{SERVER_NAME}\": it reads\
         \n\"<client> wants to access your {SERVER_NAME} account\" (the name marked Unverified:\
         \nthe client chose it), what the client gets, and where you will be sent (127.0.0.1,\
         \nthe client on this computer). Click \"Allow\"; the fake AuthKit then signs you in\
         \nautomatically as {USER} (no password) and the client is connected.\
         \nThen call the `whoami` tool. Ctrl-C stops the server.\n",
        authkit = fake.issuer(),
        database = database_label(&database_url),
    );

    let served = server.await;
    fake.stop();
    served
}

/// The database for display: SQLite paths as given, other URLs without their credentials.
fn database_label(url: &str) -> String {
    if url.starts_with("sqlite:") {
        return url.to_owned();
    }
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_password(None);
            let _ = parsed.set_username("");
            parsed.to_string()
        }
        Err(_) => "(DATABASE_URL)".to_owned(),
    }
}
