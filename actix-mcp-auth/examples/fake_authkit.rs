//! A local stand-in for WorkOS AuthKit, to try the `authkit` example without a WorkOS account.
//!
//! Starts `FakeAuthKit` (an AuthKit emulator: discovery documents, JWKS, RS256 tokens) on
//! `127.0.0.1` at a random port, then prints to stdout, one `KEY=value` per line:
//!
//! ```text
//! WORKOS_AUTHKIT_DOMAIN=http://127.0.0.1:PORT
//! MCP_BASE_URL=http://127.0.0.1:8000
//! MCP_PATH=/mcp
//! TOKEN=eyJ...
//! ```
//!
//! (valid `.env` syntax). The token's audience (`aud`) is `MCP_BASE_URL` + `MCP_PATH` (read from
//! the environment, defaults `http://127.0.0.1:8000` and `/mcp`), its subject `user_123`, its
//! `scope` the value of `WORKOS_REQUIRED_SCOPES` or else `openid profile email`, and it is valid
//! for one hour. With `FAKE_TOKENS=N` it prints `N` distinct tokens, one `TOKEN=` line each.
//! It then keeps serving (discovery and JWKS) until Ctrl-C.
//!
//! ```sh
//! cargo run --example fake_authkit                                  # terminal 1
//! WORKOS_AUTHKIT_DOMAIN=http://127.0.0.1:PORT MCP_BASE_URL=http://127.0.0.1:8000 \
//!     cargo run --example authkit                                   # terminal 2
//! curl -s http://127.0.0.1:8000/mcp -H "Authorization: Bearer $TOKEN" \
//!     -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
//!     -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}'
//! ```
//!
//! Human-readable hints go to stderr, so stdout can be parsed by scripts
//! (`scripts/wrk-authkit.sh` does).

use std::time::{SystemTime, UNIX_EPOCH};

use actix_mcp_auth_testing::FakeAuthKit;
use serde_json::json;

/// Lifetime of the printed tokens: long enough to play with them.
const TOKEN_LIFETIME_SECS: u64 = 3600;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn main() {
    dotenvy::dotenv().ok();

    let count = match std::env::var("FAKE_TOKENS") {
        Ok(raw) if !raw.trim().is_empty() => match raw.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("error: FAKE_TOKENS must be a positive integer, got {raw:?}");
                std::process::exit(1);
            }
        },
        _ => 1,
    };
    let base_url = env_or("MCP_BASE_URL", "http://127.0.0.1:8000");
    let mcp_path = env_or("MCP_PATH", "/mcp");
    let audience = format!(
        "{}/{}",
        base_url.trim_end_matches('/'),
        mcp_path.trim_start_matches('/')
    );
    // The library accepts space- or comma-separated scopes; the `scope` claim is space-separated.
    let scope = env_or("WORKOS_REQUIRED_SCOPES", "openid profile email")
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();

    let fake = FakeAuthKit::start();
    println!("WORKOS_AUTHKIT_DOMAIN={}", fake.issuer());
    println!("MCP_BASE_URL={base_url}");
    println!("MCP_PATH={mcp_path}");
    for _ in 0..count {
        // The emulator adds `iss`, `iat` and a random `jti` (so every token differs).
        let token = fake.mint(json!({
            "aud": audience,
            "sub": "user_123",
            "scope": scope,
            "exp": now + TOKEN_LIFETIME_SECS,
        }));
        println!("TOKEN={token}");
    }

    eprintln!();
    eprintln!(
        "FakeAuthKit is running at {} (token audience: {audience}).",
        fake.issuer()
    );
    eprintln!("Start the MCP server against it in another terminal:");
    eprintln!(
        "    WORKOS_AUTHKIT_DOMAIN={} MCP_BASE_URL={base_url} MCP_PATH={mcp_path} cargo run --example authkit",
        fake.issuer()
    );
    eprintln!("and send the TOKEN above as `Authorization: Bearer <TOKEN>`. Ctrl-C stops it.");
    eprintln!(
        "(stdout is valid .env syntax: `cargo run --example fake_authkit > .env` works too.)"
    );

    // The emulator serves from its own thread for as long as `fake` lives.
    loop {
        std::thread::park();
    }
}
