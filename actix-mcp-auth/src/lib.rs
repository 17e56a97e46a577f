//! OAuth 2.1 authorization for [MCP](https://modelcontextprotocol.io) servers built on
//! actix-web, with WorkOS AuthKit as the identity provider.
//!
//! An MCP server reachable over HTTP must be an OAuth 2.1 resource server: it announces where
//! clients log in (RFC 9728 protected-resource metadata), refuses requests without a valid
//! token with a `WWW-Authenticate` challenge that MCP clients follow, and only accepts tokens
//! issued for itself. This crate does that for actix-web:
//!
//! * **AuthKit mode** ([`AuthKitProvider`]): AuthKit is the authorization server. We serve the
//!   metadata, forward AuthKit's authorization-server metadata, and verify AuthKit's RS256 JWTs
//!   against its JWKS with a cache so the hot path does no RSA work.
//!
//! Either mode can enforce per-tool scopes: a [`ScopePolicy`] (or `MCP_AUTH_TOOL_SCOPES`) maps
//! MCP methods and tool, resource or prompt names to scopes, and [`BearerAuth`] refuses a call
//! whose token lacks one with 403 `insufficient_scope` before the MCP service runs, so the
//! client can step up.
//!
//! # Quick start
//!
//! ```no_run
//! use actix_mcp_auth::{AuthKitProvider, Authenticated};
//! use actix_web::{App, HttpServer, web};
//!
//! async fn whoami(user: Authenticated) -> String {
//!     user.subject().to_owned()
//! }
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     let auth = AuthKitProvider::from_env().expect("AuthKit configuration");
//!     HttpServer::new(move || {
//!         App::new()
//!             .service(auth.routes()) // well-known discovery documents
//!             .service(
//!                 web::scope(auth.mcp_path())
//!                     .wrap(auth.bearer()) // 401/403 challenges, token verification
//!                     .route("", web::post().to(whoami)),
//!             )
//!     })
//!     .bind(("127.0.0.1", 8000))?
//!     .run()
//!     .await
//! }
//! ```
//!
//! # Crate features
//!
//! * `aws-lc-rs` (default) or `rust-crypto`: the crypto backend of JWT verification and TLS.
//! * `tracing-actix-web`: `access_log::RedactingRootSpanBuilder`, an access-log span for
//!   tracing-actix-web's `TracingLogger` whose request target has its query secrets redacted.
//! * `__fuzzing`, `__bench`: internal hooks for the repository's fuzz targets and benchmarks;
//!   not part of the API, no semver promise.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// The hidden `__fuzzing`/`__bench` re-exports make internal items public whose docs link to
// other internals; those links serve the private docs, so they are not warnings there.
#![cfg_attr(
    any(feature = "__fuzzing", feature = "__bench"),
    allow(rustdoc::private_intra_doc_links)
)]

pub mod access_log;
mod backend;
pub mod body_deadline;
mod clock;
mod error;
mod mcp_request;
mod metadata;
mod middleware;
mod oauth;
mod principal;
mod providers;
mod proxy;
mod rate_limit;
mod scope_check;
pub mod scope_policy;
mod secret;
mod settings;
pub mod store;
mod upstream;
mod verify;

#[cfg(feature = "__bench")]
#[doc(hidden)]
#[path = "bench_support.rs"]
pub mod __bench;

pub use self::{
    clock::Clock,
    error::{BearerError, BearerErrorKind, ConfigError},
    metadata::ProtectedResourceMetadata,
    middleware::{BearerAuth, BearerAuthMiddleware},
    principal::{Authenticated, AuthenticatedExt},
    providers::{
        AuthKitProvider, AuthKitProviderBuilder, AuthKitRoutes, WorkOsProvider,
        WorkOsProviderBuilder,
    },
    proxy::{
        ProxyRoutes,
        cimd::{HostResolver, SystemResolver},
    },
    rate_limit::{Limit, RateLimits},
    scope_policy::{ScopePolicy, ScopePolicyBuilder},
    verify::{JwtVerifier, TokenVerifier, VerifyError, VerifyFuture},
};

/// The protocol parsers the fuzz targets (`fuzz/`, a workspace of its own) drive. Not part of
/// the API: no semver promise, and only with the `__fuzzing` feature.
#[cfg(feature = "__fuzzing")]
#[doc(hidden)]
pub mod __fuzzing {
    pub use crate::oauth::{pkce, redirect_uri, resource, scope, tokens};
}
