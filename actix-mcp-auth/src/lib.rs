//! OAuth 2.1 authorization for [MCP](https://modelcontextprotocol.io) servers built on
//! actix-web, with WorkOS AuthKit as the identity provider.
//!
//! An MCP server reachable over HTTP must be an OAuth 2.1 resource server: it announces where
//! clients log in (RFC 9728 protected-resource metadata), refuses requests without a valid
//! token with a `WWW-Authenticate` challenge that MCP clients follow, and only accepts tokens
//! issued for itself. This crate does that for actix-web, in one of two modes:
//!
//! * **AuthKit mode** ([`AuthKitProvider`]): AuthKit is the authorization server (dynamic client
//!   registration or client ID metadata documents switched on in the WorkOS dashboard). We serve
//!   the protected-resource metadata, forward AuthKit's authorization-server metadata, and
//!   verify AuthKit's RS256 JWTs against its JWKS (`iss`, `aud` = our MCP URL, `exp`, scopes),
//!   with a cache so the hot path does no RSA work. No database.
//! * **Proxy mode** ([`WorkOsProvider`]): we are the authorization server MCP clients see
//!   (`/register`, `/authorize`, a consent page, `/auth/callback`, `/token`, `/revoke`, our own
//!   metadata) in front of one WorkOS Connect application. We issue opaque tokens bound to our
//!   resource, keep AuthKit's tokens server-side and encrypted, and keep the OAuth state in a
//!   [`Store`](store::Store) on PostgreSQL or SQLite, so replicas behind a load balancer share it.
//!
//! Either mode can enforce per-tool scopes: a [`ScopePolicy`] (or `MCP_AUTH_TOOL_SCOPES`) maps
//! MCP methods and tool, resource or prompt names to scopes, and [`BearerAuth`] refuses a call
//! whose token lacks one with 403 `insufficient_scope` before the MCP service runs, so the
//! client can step up.
//!
//! In proxy mode a login policy decides who may log in at all: allow-lists of email domains,
//! WorkOS organizations, roles and permissions (`MCP_AUTH_ALLOWED_EMAIL_DOMAINS`,
//! `MCP_AUTH_ALLOWED_ORGANIZATIONS`, ...) and the application's own async hook
//! ([`WorkOsProviderBuilder::login_hook`]) over the [`UpstreamIdentity`] AuthKit signed in; a
//! refused user gets no grant, and the client `access_denied` with the [`Denial`]'s reason.
//!
//! Handlers see the caller as one [`Authenticated`] value (an extractor, or through
//! [`AuthenticatedExt`] on `HttpRequest`/`ServiceRequest`). A custom [`TokenVerifier`] can stand
//! behind [`BearerAuth`] instead of the built-in ones.
//!
//! # AuthKit mode
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
//!     // WORKOS_AUTHKIT_DOMAIN, MCP_BASE_URL, optional MCP_PATH, WORKOS_REQUIRED_SCOPES, ...
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
//! # Proxy mode
//!
//! ```no_run
//! use actix_mcp_auth::{
//!     Authenticated, WorkOsProvider,
//!     store::{Keyring, Store},
//! };
//! use actix_web::{App, HttpServer, web};
//!
//! async fn whoami(user: Authenticated) -> String {
//!     user.subject().to_owned()
//! }
//!
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // MCP_AUTH_ENCRYPTION_KEYS: base64 AES-256 keys that seal AuthKit's tokens at rest.
//!     let store = Store::connect("postgres://localhost/app", Keyring::from_env()?).await?;
//!     store.migrate().await?; // or `sqlx migrate run` beforehand
//!     // WORKOS_CLIENT_ID, WORKOS_CLIENT_SECRET, WORKOS_AUTHKIT_DOMAIN, MCP_BASE_URL, ...
//!     let auth = WorkOsProvider::from_env(store)?;
//!     // Building starts nothing in the background: delete expired rows while we run.
//!     let _sweeper = auth.store().spawn_sweeper(auth.sweep_interval(), 500);
//!     HttpServer::new(move || {
//!         App::new()
//!             .service(auth.routes()) // metadata + the OAuth endpoints + the consent page
//!             .service(
//!                 web::scope(auth.mcp_path())
//!                     .wrap(auth.bearer())
//!                     .route("", web::post().to(whoami)),
//!             )
//!     })
//!     .bind(("127.0.0.1", 8000))?
//!     .run()
//!     .await?;
//!     Ok(())
//! }
//! ```
//!
//! In proxy mode, [`WorkOsProvider::grants`] lists and revokes the grants users gave MCP
//! clients ([`Grants`], and [`UserGrants`] for a page of the signed-in user); [`AdminApi`]
//! (`MCP_AUTH_ADMIN_TOKEN`) serves the same and the audit log ([`store::audit`]) as JSON to
//! operators when mounted.
//!
//! Every setting has a builder method ([`AuthKitProvider::builder`],
//! [`WorkOsProvider::builder`]) and an environment variable (`from_env`); a misconfiguration
//! fails at start-up with a [`ConfigError`] naming the variable or method, never per request.
//! Public URLs come from configuration only, never from `Host` or `X-Forwarded-*`.
//!
//! # Testing
//!
//! The companion crate `actix-mcp-auth-testing` provides `FakeAuthKit`, an AuthKit emulator
//! over real HTTP (JWKS with rotation, token minting, Connect and DCR endpoints, injectable
//! failures), and `OAuthTestClient`, a scripted MCP client that performs whole logins.
//!
//! # Crate features
//!
//! * `aws-lc-rs` (default) or `rust-crypto`: the crypto backend of JWT verification and TLS.
//! * `postgres`, `sqlite` (both default): the database drivers of the proxy-mode store.
//! * `tracing-actix-web`: [`access_log::RedactingRootSpanBuilder`](access_log), an access-log span for
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
mod admin;
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
    admin::AdminApi,
    clock::Clock,
    error::{BearerError, BearerErrorKind, ConfigError},
    metadata::ProtectedResourceMetadata,
    middleware::{BearerAuth, BearerAuthMiddleware},
    oauth::login_policy::{Denial, UpstreamIdentity},
    principal::{Authenticated, AuthenticatedExt},
    providers::{
        AuthKitProvider, AuthKitProviderBuilder, AuthKitRoutes, WorkOsProvider,
        WorkOsProviderBuilder,
    },
    proxy::{
        ProxyRoutes,
        apps::ConnectedApps,
        cimd::{HostResolver, SystemResolver},
        grants::{Grants, UserGrants},
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
