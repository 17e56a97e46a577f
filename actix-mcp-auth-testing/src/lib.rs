//! Test support for [actix-mcp-auth](https://docs.rs/actix-mcp-auth): [`FakeAuthKit`], a local emulator of WorkOS AuthKit served over real HTTP.
//!
//! The emulator publishes the discovery documents, a JWKS and a userinfo endpoint on
//! `127.0.0.1` at a random port, mints RS256 access tokens the way AuthKit does, and lets a
//! test rotate signing keys, inject failures (server errors, slowness, an unreachable server),
//! count requests per endpoint and revoke sessions.
//!
//! It also serves the OAuth endpoints of WorkOS Connect applications (`/oauth2/authorize` and
//! `/oauth2/token`): register a confidential client with
//! [`FakeAuthKit::register_connect_app`], and the authorization endpoint signs in the
//! [current user](FakeAuthKit::set_current_user) without UI and redirects back with a code that
//! the token endpoint exchanges (PKCE S256, `client_secret_post` or `client_secret_basic`) for
//! access, ID and rotating refresh tokens. With dynamic client registration
//! (`POST /oauth2/register`, as AuthKit offers when DCR is switched on), MCP clients register
//! public clients themselves and the `resource` they send becomes their tokens' `aud`: the whole
//! AuthKit-mode login works against the emulator.
//!
//! ```no_run
//! use actix_mcp_auth_testing::{Endpoint, FakeAuthKit};
//! use serde_json::json;
//!
//! let fake = FakeAuthKit::start();
//! let token = fake.mint(json!({ "aud": "http://127.0.0.1:8000/mcp" }));
//! // ... point the code under test at `fake.issuer()` and send `token` ...
//! assert_eq!(fake.calls(Endpoint::Jwks), 0);
//! # let _ = token;
//! ```
//!
//! [`OAuthTestClient`] is the other side: a scripted MCP client (discovery, registration,
//! login through the consent page and the emulator, token exchange, refresh, revocation, tool
//! calls) over real HTTP, for tests, benchmarks and load drivers.
//!
//! Both connect only to loopback and hold fixed, published RSA test keys: never point a
//! production server at the emulator.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod fake_authkit;
mod oauth_client;

pub use fake_authkit::{Endpoint, Failure, FakeAuthKit};
pub use oauth_client::{
    AuthorizationCode, AuthorizationRequest, AuthorizeOptions, ConsentDecision, ConsentForm,
    DEFAULT_REDIRECT_URI, Discovery, Endpoints, Login, MCP_PROTOCOL_VERSION, OAuthClientError,
    OAuthTestClient, Pkce, RegisteredClient, TestResponse, TokenSet, hidden_field, query_params,
};

/// Installs the process-wide JWT crypto provider of the selected crypto feature (the same one
/// the library installs), so minting and verifying work whichever runs first.
pub(crate) fn install_jwt_provider() {
    #[cfg(feature = "aws-lc-rs")]
    let provider = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    let provider = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
    // Err only means a provider is already installed.
    let _ = provider.install_default();
}
